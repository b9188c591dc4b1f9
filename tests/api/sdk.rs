//! The official Python SDKs (from PyPI) against the gateway: `openai` (chat completions and
//! Responses) and `anthropic` (Messages), each against an Anthropic provider and OpenAI-style
//! providers played by the mock. `scripts/setup.sh` installs the SDKs into a virtualenv and
//! `scripts/test.sh` points `PERPETUO_PYTHON` at it.

use serde_json::json;

use crate::helpers::*;
use crate::mock::vertex::{SA_PRIVATE_KEY, service_account};
use crate::mock::{Flavor, Mock};

/// Runs `script` with `args`; its output, after checking it succeeded (`None`: no Python with the
/// SDKs here, the test is skipped).
async fn run_sdk_script(script: &'static str, args: Vec<String>) -> Option<String> {
    let python = crate::requires::python()?;
    let interpreter = python.clone();
    // The server runs on this runtime; the script waits on its own thread.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&interpreter).arg(script).args(args).env("NO_PROXY", "*").output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run {python}: {e} (run scripts/setup.sh, which installs the SDKs)"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK check failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    Some(stdout)
}

/// The gateway's defaults, with room for every call the scripts make in a minute.
fn sdk_options() -> Options {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(10_000).unwrap();
    options
}

/// Claude on Vertex AI (the mock's token endpoint and rawPredict), at `priority`.
async fn vertex_provider(gw: &Gateway, priority: i64) -> Mock {
    let mock = Mock::start(Flavor::Vertex).await;
    let key = service_account(&format!("{}/token", mock.base_url()), SA_PRIVATE_KEY);
    let body = json!({"label": "Vertex", "kind": "vertex", "base_url": mock.base_url(), "api_key": key,
                      "priority": priority, "region": "us-east5"});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &body).await.status(), 201);
    mock
}

/// Claude on Amazon Bedrock (the mock checks each SigV4 signature and streams event-stream
/// frames), at `priority`.
async fn bedrock_provider(gw: &Gateway, priority: i64) -> Mock {
    let mock = Mock::start(Flavor::Bedrock).await;
    let body = json!({"label": "Bedrock", "kind": "bedrock", "base_url": mock.base_url(),
                      "api_key": crate::mock::bedrock::access_key_json(None), "priority": priority,
                      "region": crate::mock::bedrock::REGION});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &body).await.status(), 201);
    // Converse on the same account, for the models that are not Claude.
    let mut converse = body.clone();
    converse["kind"] = json!("bedrock_converse");
    converse["label"] = json!("Bedrock Converse");
    converse["priority"] = json!(priority + 10);
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &converse).await.status(), 201);
    mock
}

const CONVERSE_MODEL: &str = "bedrock_converse/us.amazon.nova-lite-v1:0";
const VERTEX_MODEL: &str = "vertex/claude-sonnet-4-5@20250929";
const BEDROCK_MODEL: &str = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const GEMINI_MODEL: &str = "gemini/gemini-2.5-flash";

#[tokio::test]
async fn the_official_python_sdk_works_against_the_gateway() {
    let gw = Gateway::start(sdk_options()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    gw.provider("Compatible", "openai_compatible", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 2).await;
    let azure = Mock::start(Flavor::Azure).await;
    gw.provider("Azure", "azure", &azure.base_url(), 3).await;
    let vertex = vertex_provider(&gw, 4).await;
    let gemini = Mock::start(Flavor::Gemini).await;
    gw.provider("Gemini", "gemini", &gemini.base_url(), 5).await;
    let bedrock = bedrock_provider(&gw, 6).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk_check.py");
    let args = vec![
        gw.app.url("/v1"),
        gw.key.clone(),
        "mock-small".into(),
        "anthropic/claude-3-5-haiku".into(),
        "azure/gpt-4o-mini".into(),
        VERTEX_MODEL.into(),
        GEMINI_MODEL.into(),
        BEDROCK_MODEL.into(),
        CONVERSE_MODEL.into(),
    ];
    let Some(stdout) = run_sdk_script(script, args).await else { return };
    assert!(
        stdout.contains("ok: mock-small")
            && stdout.contains("ok: anthropic/claude-3-5-haiku")
            && stdout.contains("ok: azure/gpt-4o-mini")
            && stdout.contains(&format!("ok: {VERTEX_MODEL}"))
            && stdout.contains(&format!("ok: {GEMINI_MODEL}"))
            && stdout.contains(&format!("ok: {BEDROCK_MODEL}"))
            && stdout.contains(&format!("ok: {CONVERSE_MODEL}"))
            && stdout.contains("ok: structured outputs")
            && stdout.contains("ok: errors"),
        "{stdout}"
    );
    assert!(openai.hits() > 0 && anthropic.hits() > 0 && azure.hits() > 0, "every provider was used");
    assert!(!vertex.vertex_calls().is_empty(), "Vertex AI was called");
    assert!(gemini.seen().iter().any(|s| s.path.ends_with(":streamGenerateContent")), "Gemini streamed natively");
    assert!(!bedrock.bedrock_calls().is_empty(), "Amazon Bedrock was called");
}

#[tokio::test]
async fn the_anthropic_sdk_works_against_messages_passed_through_and_translated() {
    let gw = Gateway::start(sdk_options()).await;
    let claude = Mock::start(Flavor::Anthropic).await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 1).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 2).await;
    let azure = Mock::start(Flavor::Azure).await;
    gw.provider("Azure", "azure", &azure.base_url(), 3).await;
    let vertex = vertex_provider(&gw, 4).await;
    let gemini = Mock::start(Flavor::Gemini).await;
    gw.provider("Gemini", "gemini", &gemini.base_url(), 5).await;
    let bedrock = bedrock_provider(&gw, 6).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_sdk_check.py");
    // The SDK appends `/v1/messages` itself: the base URL is the server's root.
    let models = [
        "claude-test-model",
        "openai_compatible/llama-3",
        "azure/gpt-4o-mini",
        VERTEX_MODEL,
        GEMINI_MODEL,
        BEDROCK_MODEL,
    ];
    let mut args = vec![gw.app.url(""), gw.key.clone()];
    args.extend(models.iter().map(|m| (*m).to_owned()));
    let Some(stdout) = run_sdk_script(script, args).await else { return };
    for model in models {
        assert!(stdout.contains(&format!("ok: {model}")), "{stdout}");
    }
    assert!(stdout.contains("ok: errors"), "{stdout}");
    assert!(claude.seen().iter().any(|s| s.path == "/v1/messages"), "passed through to Anthropic");
    assert!(claude.seen().iter().any(|s| s.path == "/v1/messages/count_tokens"), "Anthropic counted its own");
    assert!(local.seen().iter().any(|s| s.path == "/v1/chat/completions"), "translated for the compatible host");
    let beta = vertex.seen().into_iter().find(|s| s.headers.contains_key("anthropic-beta"));
    assert!(beta.is_some(), "Claude Code's beta headers reach Vertex AI with the passed-through call");
    assert!(gemini.hits() > 0, "Gemini served the translated Messages calls");
    let calls = bedrock.bedrock_calls();
    assert!(
        calls.iter().any(|(_, _, body)| body["anthropic_beta"].is_array()),
        "Claude Code's betas reach Bedrock in the body: {calls:?}"
    );
    let records = gw.usage(1).await;
    assert!(records.iter().all(|r| r["endpoint"] == "messages"));
}

#[tokio::test]
async fn the_openai_sdk_works_against_responses_passed_through_and_translated() {
    let gw = Gateway::start(sdk_options()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let claude = Mock::start(Flavor::Anthropic).await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 2).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 3).await;
    let azure = Mock::start(Flavor::Azure).await;
    gw.provider("Azure", "azure", &azure.base_url(), 4).await;
    let vertex = vertex_provider(&gw, 5).await;
    let gemini = Mock::start(Flavor::Gemini).await;
    gw.provider("Gemini", "gemini", &gemini.base_url(), 6).await;
    let bedrock = bedrock_provider(&gw, 7).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_responses_check.py");
    let models = [
        "gpt-4o",
        "claude-sonnet-4-5",
        "openai_compatible/llama-3",
        "azure/gpt-4o-mini",
        VERTEX_MODEL,
        GEMINI_MODEL,
        BEDROCK_MODEL,
        CONVERSE_MODEL,
    ];
    let mut args = vec![gw.app.url("/v1"), gw.key.clone()];
    args.extend(models.iter().map(|m| (*m).to_owned()));
    let Some(stdout) = run_sdk_script(script, args).await else { return };
    for model in models {
        assert!(stdout.contains(&format!("ok: {model}")), "{stdout}");
    }
    // Codex-shaped calls, translated for the providers that do not speak Responses.
    for model in [models[1], models[2], VERTEX_MODEL, GEMINI_MODEL, BEDROCK_MODEL, CONVERSE_MODEL] {
        assert!(stdout.contains(&format!("ok: codex {model}")), "{stdout}");
    }
    assert!(stdout.contains("ok: errors"), "{stdout}");
    assert!(openai.seen().iter().all(|s| s.path == "/v1/responses"), "OpenAI got Responses, untouched");
    assert!(claude.hits() > 0 && local.seen().iter().all(|s| s.path == "/v1/chat/completions"));
    assert!(azure.seen().iter().all(|s| s.path == "/v1/responses"), "Azure got Responses, untouched");
    assert!(
        vertex
            .vertex_calls()
            .iter()
            .all(|(action, _)| action.contains("RawPredict") || action.ends_with(":rawPredict"))
    );
    assert!(!vertex.vertex_calls().is_empty(), "Vertex AI got Messages, translated");
    assert!(gemini.seen().iter().all(|s| s.path.contains(":") && s.path.starts_with("/v1beta/models/")));
    assert!(!bedrock.bedrock_calls().is_empty(), "Amazon Bedrock got Messages, translated");
}
