//! The official `openai` Python SDK (from PyPI) against the gateway, with an OpenAI-compatible
//! and an Anthropic provider behind it. `scripts/setup.sh` installs the SDK into a virtualenv and
//! `scripts/test.sh` points `PERPETUO_PYTHON` at it.

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

#[tokio::test]
async fn the_official_python_sdk_works_against_the_gateway() {
    let gw = Gateway::start(Options::default()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    gw.provider("Compatible", "openai_compatible", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 2).await;

    let python = std::env::var("PERPETUO_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk_check.py");
    let (url, key, interpreter) = (gw.app.url("/v1"), gw.key.clone(), python.clone());
    // The server runs on this runtime; the script waits on its own thread.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&interpreter)
            .arg(script)
            .arg(url)
            .arg(key)
            .arg("mock-small")
            .arg("anthropic/claude-3-5-haiku")
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run {python}: {e} (run scripts/setup.sh, which installs the openai SDK)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK check failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("ok: mock-small")
            && stdout.contains("ok: anthropic/claude-3-5-haiku")
            && stdout.contains("ok: errors"),
        "{stdout}"
    );
    assert!(openai.hits() > 0 && anthropic.hits() > 0, "both providers were used");
}
