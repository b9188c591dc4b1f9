//! Agents on any provider: Codex-shaped Responses calls (namespaced tools, a hosted tool merely
//! offered) complete a tool round trip on an Anthropic provider and on an OpenAI-compatible one,
//! plain and streamed; Anthropic server tools offered on `/v1/messages` to another provider are
//! dropped; and OpenAI-style calls reaching Claude get prompt-cache breakpoints, so a second
//! identical call reads the cache and is charged at the cache price.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Flavor, Mock};

/// Codex's request shape (0.171): the namespace first (the mock's model calls the first tool).
fn codex(model: &str, stream: bool, input: Vec<Value>) -> Value {
    json!({
        "model": model,
        "instructions": "You are Codex, a coding agent.",
        "input": input,
        "tools": [
            {"type": "namespace", "name": "multi_agent_v1", "description": "Manage helper agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Start a helper.", "strict": false,
                 "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}},
                {"type": "function", "name": "wait", "parameters": {"type": "object", "properties": {}}},
            ]},
            {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
            {"type": "web_search", "external_web_access": false},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": stream,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "client_metadata": {"originator": "codex_cli_rs"},
    })
}

async fn responses(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.app.client.post(gw.app.url("/v1/responses")).bearer_auth(&gw.key).json(body).send().await.unwrap()
}

/// The response object: the body, or `response.completed`'s in a stream.
async fn response_object(response: reqwest::Response, stream: bool) -> Value {
    let text = response.text().await.unwrap();
    if !stream {
        return serde_json::from_str(&text).unwrap();
    }
    let completed = text
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .unwrap_or_else(|| panic!("no response.completed in {text}"));
    completed["response"].clone()
}

async fn codex_round_trip(flavor: Flavor, kind: &str, model: &str, stream: bool) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(flavor).await;
    gw.provider("Target", kind, &mock.base_url(), 10).await;
    let ask =
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Split the work."}]});
    let first = responses(&gw, &codex(model, stream, vec![ask.clone()])).await;
    assert_eq!(first.status(), 200, "{kind} stream={stream}");
    assert_eq!(first.headers()["x-perpetuo-dropped-tools"], "web_search");
    let answer = response_object(first, stream).await;
    let call = answer["output"].as_array().unwrap().iter().find(|i| i["type"] == "function_call").cloned();
    let call = call.unwrap_or_else(|| panic!("no call in {answer}"));
    assert_eq!(
        (call["name"].as_str(), call["namespace"].as_str()),
        (Some("spawn_agent"), Some("multi_agent_v1")),
        "{call}"
    );

    // What the provider got: function tools only, the namespace's under reversible flat names.
    let sent = mock.seen().last().unwrap().body.clone();
    let names: Vec<String> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().or(t["name"].as_str()).unwrap().to_owned())
        .collect();
    assert_eq!(names, ["multi_agent_v1__spawn_agent", "multi_agent_v1__wait", "shell"], "{sent}");

    // The client sends the call back with its result, as Codex does: the round trip ends in text.
    let echoed = json!({"type": "function_call", "call_id": call["call_id"], "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": call["arguments"]});
    let output = json!({"type": "function_call_output", "call_id": call["call_id"], "output": "helper 1 started"});
    let second = responses(&gw, &codex(model, stream, vec![ask, echoed, output])).await;
    assert_eq!(second.status(), 200);
    let answer = response_object(second, stream).await;
    let message = answer["output"].as_array().unwrap().iter().find(|i| i["type"] == "message").cloned();
    assert!(message.is_some_and(|m| m["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty())), "{answer}");
    let sent = mock.seen().last().unwrap().body.to_string();
    assert!(sent.contains("multi_agent_v1__spawn_agent") && sent.contains("helper 1 started"), "{sent}");

    let records = gw.usage(2).await;
    for record in &records {
        assert_eq!(record["dropped_tools"], "web_search", "{record}");
        assert_eq!(record["status"], 200);
    }
}

#[tokio::test]
async fn codex_tool_round_trip_on_anthropic() {
    for stream in [false, true] {
        codex_round_trip(Flavor::Anthropic, "anthropic", "anthropic/claude-sonnet-4-5", stream).await;
    }
}

#[tokio::test]
async fn codex_tool_round_trip_on_an_openai_compatible_host() {
    for stream in [false, true] {
        codex_round_trip(Flavor::OpenAi, "openai_compatible", "openai_compatible/qwen3-coder", stream).await;
    }
}

#[tokio::test]
async fn forcing_a_hosted_tool_is_refused_clearly() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 10).await;
    let mut body = codex("claude-sonnet-4-5", false, vec![json!({"role": "user", "content": "search"})]);
    body["tool_choice"] = json!({"type": "web_search"});
    let refused = responses(&gw, &body).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["param"], "tool_choice", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("web_search"), "{error}");
    assert!(mock.seen().is_empty(), "nothing reached the provider");
}

/// Claude Code's server tool (web search) offered on `/v1/messages` to an OpenAI-compatible
/// provider: dropped, the call goes on with the client tools.
#[tokio::test]
async fn anthropic_server_tools_are_dropped_for_other_providers() {
    let (gw, mock) = openai_gateway().await;
    let body = json!({
        "model": "mock-small", "max_tokens": 256,
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
        ],
        "messages": [{"role": "user", "content": "read main.rs"}],
    });
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-dropped-tools"], "web_search_20250305");
    let answer: Value = response.json().await.unwrap();
    let used = answer["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").cloned().unwrap();
    assert_eq!(used["name"], "Read");
    let sent = mock.seen().last().unwrap().body.clone();
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "{sent}");
    assert_eq!(gw.usage(1).await[0]["dropped_tools"], "web_search_20250305");
    // The request log says so too.
    let browser = new_client();
    let fields = [("email", gw.owner_email.as_str()), ("password", PASSWORD)];
    assert_eq!(gw.app.post_form(&browser, "/fn/sign_in", "/signin", &fields).await.status(), 302);
    let page = browser.get(gw.app.url("/usage")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("without web_search_20250305"), "the request log row names the dropped tool");
}

/// An OpenAI SDK-shaped chat call and a Responses call with a long system prompt reach Claude
/// with cache breakpoints; the provider (the mock plays Anthropic's cache accounting) writes the
/// prefix on the first call and reads it on the second identical one; each record carries those
/// counts and costs exactly the price table's cache terms (Anthropic: reads 0.1x, writes 1.25x).
#[tokio::test]
async fn openai_style_calls_to_claude_read_the_cache_at_the_cache_price() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 10).await;
    let price = json!({"kind": "anthropic", "model": "claude-sonnet-4-5", "input_per_million": 3.0, "output_per_million": 15.0});
    assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    // Under a budget, each call reserves its worst case (every prompt token at the cache-write
    // price) and is charged what Anthropic bills, within it.
    let budget = gw
        .app
        .client
        .put(gw.app.url("/api/v1/budgets/workspace"))
        .bearer_auth(&gw.token)
        .json(&json!({"usd_limit": 100.0}));
    assert_eq!(budget.send().await.unwrap().status(), 200);
    let system = "You are a meticulous reviewer of Rust code. Follow the house rules below. ".repeat(120);

    let chat = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "Review this diff."},
    ]});
    let responses_body = json!({"model": "claude-sonnet-4-5", "max_output_tokens": 100, "instructions": system, "input": "Review the next diff."});
    let mut client_cached = Vec::new();
    for _ in 0..2 {
        let answer: Value = gw.chat(&chat).await.json().await.unwrap();
        client_cached.push(answer["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0));
        let sent = mock.seen().last().unwrap().body.clone();
        assert_eq!(sent["system"][0]["cache_control"], json!({"type": "ephemeral"}), "{sent}");
    }
    for _ in 0..2 {
        let response = responses(&gw, &responses_body).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        client_cached.push(answer["usage"]["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0));
    }
    let records = gw.usage(4).await;
    let n = |r: &Value, f: &str| r[f].as_u64().unwrap_or(0);
    assert!(n(&records[0], "cache_write_tokens") > 1000 && n(&records[0], "cache_read_tokens") == 0, "{}", records[0]);
    assert_eq!(
        n(&records[1], "cache_read_tokens"),
        n(&records[0], "cache_write_tokens"),
        "the second call reads what the first wrote"
    );
    assert_eq!(n(&records[1], "cache_write_tokens"), 0);
    assert!(n(&records[3], "cache_read_tokens") > 1000, "the second Responses call reads too: {}", records[3]);
    for (record, seen_by_client) in records.iter().zip(&client_cached) {
        assert_eq!(n(record, "cache_read_tokens"), *seen_by_client, "the client is told what was read");
        let (read, write) = (n(record, "cache_read_tokens") as f64, n(record, "cache_write_tokens") as f64);
        let uncached = n(record, "prompt_tokens") as f64 - read - write;
        let expected = ((uncached * 3.0 + read * 0.3 + write * 3.75 + n(record, "completion_tokens") as f64 * 15.0)
            * 1000.0)
            .round();
        assert_eq!(record["cost_nanos"].as_f64(), Some(expected), "{record}");
    }
}

/// A client's own `cache_control` on a chat content part is honoured (LiteLLM-style clients that
/// know Claude send it), and the total never passes Anthropic's four.
#[tokio::test]
async fn a_clients_own_cache_control_is_kept() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 10).await;
    let long = "Context that the client wants cached. ".repeat(200);
    let parts = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"type": "text", "text": format!("{i}: {long}"), "cache_control": {"type": "ephemeral"}}))
            .collect()
    };
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [
        {"role": "system", "content": parts(2)},
        {"role": "user", "content": parts(2)},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": "and now?"},
    ]});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = mock.seen().last().unwrap().body.clone();
    assert_eq!(sent["system"][1]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(sent.to_string().matches("cache_control").count(), 4, "{sent}");
}

/// Reasoning sent back in a later turn never breaks a translated call: Anthropic thinking blocks
/// (with their signatures) on `/v1/messages` to an OpenAI-style provider, and OpenAI reasoning
/// items (encrypted) on `/v1/responses` to Anthropic, are left out; thinking with tools works.
#[tokio::test]
async fn reasoning_from_earlier_turns_is_left_out_across_families() {
    let (gw, openai_mock) = openai_gateway().await;
    let claude = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 20).await;
    let messages = json!({
        "model": "openai_compatible/mock-small", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read the file.", "signature": "EqQBCgIYAhIM"},
                {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {"path": "a.rs"}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "fn main() {}"}]},
        ],
    });
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&messages)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = openai_mock.seen().last().unwrap().body.to_string();
    assert!(!sent.contains("EqQBCgIYAhIM") && !sent.contains("I should read"), "{sent}");

    let responses_body = json!({
        "model": "anthropic/claude-sonnet-4-5",
        "input": [
            {"type": "message", "role": "user", "content": "go on"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "message", "role": "user", "content": "and?"},
        ],
        "reasoning": {"effort": "high"},
    });
    let response = responses(&gw, &responses_body).await;
    assert_eq!(response.status(), 200);
    let sent = claude.seen().last().unwrap().body.to_string();
    assert!(!sent.contains("gAAAAB-opaque"), "{sent}");
}

/// Both are the provider owner's choice: breakpoints off, and hosted tools refused rather than
/// dropped (a PATCH turns each back), through REST; the provider shows them.
#[tokio::test]
async fn caching_and_hosted_tool_dropping_are_settings_of_the_provider() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    let created = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Strict", "kind": "anthropic", "base_url": mock.base_url(), "api_key": crate::mock::VALID_KEY,
                    "auto_cache": false, "refuse_hosted_tools": true}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!((created["auto_cache"].as_bool(), created["refuse_hosted_tools"].as_bool()), (Some(false), Some(true)));
    let id = created["id"].as_str().unwrap().to_owned();

    let system = "A long and stable system prompt for the reviewer. ".repeat(150);
    let chat = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}]});
    assert_eq!(gw.chat(&chat).await.status(), 200);
    assert!(!mock.seen().last().unwrap().body.to_string().contains("cache_control"), "no breakpoints when off");

    let refused =
        responses(&gw, &codex("claude-sonnet-4-5", false, vec![json!({"role": "user", "content": "go"})])).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("web_search"), "{error}");

    let patch = json!({"auto_cache": true, "refuse_hosted_tools": false});
    let patched = gw
        .app
        .client
        .patch(gw.app.url(&format!("/api/v1/providers/{id}")))
        .bearer_auth(&gw.token)
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    // The provider cache follows the change at once on this instance (live invalidation).
    let ok = poll(std::time::Duration::from_secs(10), || async {
        let r =
            responses(&gw, &codex("claude-sonnet-4-5", false, vec![json!({"role": "user", "content": "go"})])).await;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(ok.is_some(), "dropped again after the change");
    assert_eq!(gw.chat(&chat).await.status(), 200);
    assert!(mock.seen().last().unwrap().body.to_string().contains("cache_control"), "breakpoints again");
}
