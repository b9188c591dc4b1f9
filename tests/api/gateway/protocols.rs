//! `/v1/messages` (Anthropic Messages) and `/v1/responses` (OpenAI Responses): passed through to
//! providers that speak them, translated for the others, errors in each route's shape, fallback
//! across protocols, the token count, the model list for Anthropic clients, and one usage record
//! per call with its route.

use serde_json::{Value, json};

use super::fast_options;
use crate::helpers::*;
use crate::mock::{Behavior, Flavor, Mock, VALID_KEY};

fn messages_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 256,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Say hello"}],
        "top_k": 5,
        "stream": stream,
    })
}

fn tool_messages_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "stream": stream,
    })
}

async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut request = gw.app.client.post(gw.app.url(path)).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sent")
}

async fn messages(gw: &Gateway, body: &Value) -> reqwest::Response {
    post(gw, "/v1/messages", &[("x-api-key", &gw.key), ("anthropic-version", "2023-06-01")], body).await
}

async fn responses(gw: &Gateway, body: &Value) -> reqwest::Response {
    gw.app.client.post(gw.app.url("/v1/responses")).bearer_auth(&gw.key).json(body).send().await.expect("sent")
}

/// `(event name, data)` of an SSE body.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or(Value::Null))
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

/// `(type, message)` of an Anthropic error body, checking its shape.
fn anthropic_error(body: &Value) -> (String, String) {
    assert_eq!(body["type"], "error", "{body}");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&body["error"]["type"]), text(&body["error"]["message"]))
}

async fn anthropic_gateway() -> (Gateway, Mock) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 10).await;
    (gw, mock)
}

#[tokio::test]
async fn messages_pass_through_to_anthropic_untouched_but_for_the_model() {
    let (gw, mock) = anthropic_gateway().await;
    mock.set_cache(5, 3);
    let body = messages_body("anthropic/claude-sonnet-4-5", false);
    let response = post(
        &gw,
        "/v1/messages",
        &[("x-api-key", &gw.key), ("anthropic-version", "2023-06-01"), ("anthropic-beta", "prompt-caching-2024-07-31")],
        &body,
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["id"], "msg_mock", "the provider's answer, as it sent it");
    assert_eq!(answer["content"][0]["text"], "Hello from Claude mock");
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 5);
    let seen = mock.seen().pop().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(seen.body, expected, "the body went upstream unchanged but for the model");
    assert_eq!(seen.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(seen.headers["x-api-key"], VALID_KEY, "the provider's key, never the client's");

    let response = messages(&gw, &messages_body("claude-sonnet-4-5", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "the provider's events, in its order"
    );
    assert_eq!(events[0].1["message"]["id"], "msg_mock");

    let records = gw.usage(2).await;
    for record in &records {
        assert_eq!(record["endpoint"], "messages");
        assert_eq!(record["provider_kind"], "anthropic");
        assert_eq!(record["completion_tokens"], 7);
    }
    assert_eq!(records[0]["prompt_tokens"], 11 + 5 + 3, "cache reads and writes are input tokens too");
    assert_eq!(
        (records[0]["cache_read_tokens"].clone(), records[0]["cache_write_tokens"].clone()),
        (json!(5), json!(3))
    );
    assert_eq!(records[1]["stream"], true);
}

#[tokio::test]
async fn messages_are_translated_for_openai_style_providers_tool_calls_included() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Local", "openai_compatible", &mock.base_url(), 10).await;

    let response = messages(&gw, &tool_messages_body("claude-sonnet-4-5", false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "claude-sonnet-4-5");
    assert_eq!(answer["stop_reason"], "tool_use");
    assert_eq!(answer["content"][0]["type"], "tool_use");
    assert_eq!(answer["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(answer["usage"]["input_tokens"], 11);
    let seen = mock.seen().pop().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(seen.body["max_tokens"], 256);

    let response = messages(&gw, &tool_messages_body("claude-sonnet-4-5", true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.first().map(|(n, _)| n.as_str()), Some("message_start"));
    assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("message_stop"));
    let json: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}), "arguments streamed whole");
    let delta = events.iter().find(|(n, _)| n == "message_delta").map(|(_, d)| d.clone()).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        (delta["usage"]["output_tokens"].clone(), delta["usage"]["input_tokens"].clone()),
        (json!(7), json!(11))
    );
    let starts: Vec<&Value> = events.iter().filter(|(n, _)| n == "content_block_start").map(|(_, d)| d).collect();
    let stops = events.iter().filter(|(n, _)| n == "content_block_stop").count();
    assert_eq!(starts.len(), stops, "every block opened is closed");

    let records = gw.usage(2).await;
    assert!(
        records.iter().all(|r| r["endpoint"] == "messages" && r["prompt_tokens"] == 11 && r["completion_tokens"] == 7)
    );
}

#[tokio::test]
async fn messages_errors_take_anthropics_shape_and_statuses() {
    let (gw, mock) = anthropic_gateway().await;
    let no_key = post(&gw, "/v1/messages", &[], &messages_body("claude-x", false)).await;
    assert_eq!(no_key.status(), 401);
    assert_eq!(anthropic_error(&no_key.json().await.unwrap()).0, "authentication_error");
    let bad_key = post(&gw, "/v1/messages", &[("x-api-key", "pk_nope")], &messages_body("claude-x", false)).await;
    assert_eq!(bad_key.status(), 401);

    let mut no_max = messages_body("claude-x", false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let response = messages(&gw, &no_max).await;
    assert_eq!(response.status(), 400);
    let (kind, message) = anthropic_error(&response.json().await.unwrap());
    assert_eq!(kind, "invalid_request_error");
    assert!(message.contains("max_tokens"), "{message}");

    let response = messages(&gw, &messages_body("mystery-model", false)).await;
    assert_eq!(response.status(), 404);
    assert_eq!(anthropic_error(&response.json().await.unwrap()).0, "not_found_error");

    let response = post(
        &gw,
        "/v1/messages",
        &[("x-api-key", &gw.key), ("content-type", "application/json")],
        &Value::String("not an object".into()),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(anthropic_error(&response.json().await.unwrap()).0, "invalid_request_error");

    // The provider refuses the request itself: its words, Anthropic's type for the status.
    mock.script([Behavior::Status(400, None)]);
    let response = messages(&gw, &messages_body("claude-x", false)).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        anthropic_error(&response.json().await.unwrap()),
        ("invalid_request_error".into(), "mock says 400".into())
    );

    // Overloaded everywhere: Anthropic's 529, as the provider said it.
    mock.set_default(Behavior::Status(529, None));
    let response = messages(&gw, &messages_body("claude-x", false)).await;
    assert_eq!(response.status(), 529);
    assert_eq!(anthropic_error(&response.json().await.unwrap()).0, "overloaded_error");
    mock.set_default(Behavior::Ok);

    let records = gw.usage(5).await;
    assert!(records.iter().all(|r| r["endpoint"] == "messages"));
}

#[tokio::test]
async fn the_key_limit_on_messages_is_anthropics_429() {
    let mut options = fast_options();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(1).unwrap();
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &mock.base_url(), 10).await;
    let first = messages(&gw, &messages_body("claude-x", false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["anthropic-ratelimit-requests-limit"], "1");
    assert_eq!(first.headers()["anthropic-ratelimit-requests-remaining"], "0");
    let second = messages(&gw, &messages_body("claude-x", false)).await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let reset = second.headers()["anthropic-ratelimit-requests-reset"].to_str().unwrap().to_owned();
    assert!(reset.ends_with('Z') && reset.contains('T'), "RFC 3339: {reset}");
    assert_eq!(anthropic_error(&second.json().await.unwrap()).0, "rate_limit_error");
}

#[tokio::test]
async fn a_failing_anthropic_provider_falls_back_to_an_openai_style_one_across_protocols() {
    let gw = Gateway::start(fast_options()).await;
    let claude = Mock::start(Flavor::Anthropic).await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 1).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 2).await;
    claude.set_default(Behavior::Status(500, None));
    for stream in [false, true] {
        let response = messages(&gw, &messages_body("claude-sonnet-4-5", stream)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-perpetuo-provider"], "Local");
        let text = response.text().await.unwrap();
        if stream {
            let events = sse_events(&text);
            assert_eq!(events.first().map(|(n, _)| n.as_str()), Some("message_start"));
            let said: String =
                events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_owned)).collect();
            assert_eq!(said, "Hello from the mock");
        } else {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["content"][0]["text"], "Hello from the mock");
        }
    }
    assert!(claude.hits() >= 2, "the Anthropic provider was tried first");
    assert_eq!(local.seen().iter().filter(|s| s.path == "/v1/chat/completions").count(), 2);

    // And the other way: a Responses call whose OpenAI provider fails is served by Claude.
    let gw = Gateway::start(fast_options()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let claude = Mock::start(Flavor::Anthropic).await;
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 2).await;
    openai.set_default(Behavior::Status(503, None));
    let response = responses(&gw, &json!({"model": "openai/gpt-4o", "input": "hi"})).await;
    assert_eq!(response.status(), 502, "a kind prefix keeps the call on that kind");
    assert_eq!(claude.hits(), 0);
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "claude-sonnet-4-5", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["output"][0]["content"][0]["text"], "Hello from Claude mock");
}

#[tokio::test]
async fn responses_pass_through_to_openai_and_are_translated_elsewhere() {
    let gw = Gateway::start(fast_options()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    let body = json!({"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_prev", "store": true});
    let response = responses(&gw, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["id"], "resp_mock", "OpenAI's own response object");
    let seen = openai.seen().pop().unwrap();
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(seen.body, body, "passed through unchanged");
    let response = responses(&gw, &json!({"model": "gpt-4o", "input": "hi", "stream": true})).await;
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().map(|(n, _)| n.as_str()), Some("response.completed"));
    assert!(events.iter().enumerate().all(|(i, (_, d))| d["sequence_number"] == i), "the provider's numbering");
    let records = gw.usage(2).await;
    for record in &records {
        assert_eq!(record["endpoint"], "responses");
        assert_eq!((record["prompt_tokens"].clone(), record["completion_tokens"].clone()), (json!(11), json!(7)));
        assert_eq!(record["reasoning_tokens"], 2);
    }

    // An OpenAI-compatible host: translated through chat.
    let gw = Gateway::start(fast_options()).await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 1).await;
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let response =
        responses(&gw, &json!({"model": "llama-3", "input": "Weather?", "tools": tools, "instructions": "Be brief."}))
            .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["output"][0]["type"], "function_call");
    assert_eq!(answer["output"][0]["arguments"], "{\"city\":\"Paris\"}");
    let seen = local.seen().pop().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    let response =
        responses(&gw, &json!({"model": "llama-3", "input": "Weather?", "tools": tools, "stream": true})).await;
    let events = sse_events(&response.text().await.unwrap());
    assert!(events.iter().enumerate().all(|(i, (n, d))| d["sequence_number"] == i && d["type"] == n.as_str()));
    let arguments: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Paris\"}");
    let completed = &events.last().unwrap().1;
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 11);

    let response =
        responses(&gw, &json!({"model": "llama-3", "input": "more", "previous_response_id": "resp_1"})).await;
    let error = api_error_loose(response, 400).await;
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert!(error["error"]["message"].as_str().unwrap().contains("keeps no conversation state"));
    let response = responses(&gw, &json!({"model": "llama-3"})).await;
    assert_eq!(api_error_loose(response, 400).await["error"]["param"], "input");
}

/// An OpenAI error body with `status` (its `code` may be null).
async fn api_error_loose(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string() && body["error"]["type"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn count_tokens_asks_anthropic_and_estimates_elsewhere() {
    let (gw, mock) = anthropic_gateway().await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 20).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello there"}]});
    let response = post(&gw, "/v1/messages/count_tokens", &[("x-api-key", &gw.key)], &body).await;
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("x-perpetuo-token-count"));
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": 42}));
    let seen = mock.seen().pop().unwrap();
    assert_eq!(
        (seen.path.as_str(), seen.body["model"].clone()),
        ("/v1/messages/count_tokens", json!("claude-sonnet-4-5"))
    );

    let body = json!({"model": "llama-3", "messages": [{"role": "user", "content": "Hello there"}]});
    let response = post(&gw, "/v1/messages/count_tokens", &[("x-api-key", &gw.key)], &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-token-count"], "estimate; encoding=o200k_base");
    let count = response.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap();
    assert!((3..40).contains(&count), "{count}");

    let response =
        post(&gw, "/v1/messages/count_tokens", &[("x-api-key", &gw.key)], &json!({"model": "llama-3"})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(anthropic_error(&response.json().await.unwrap()).0, "invalid_request_error");
    let response = post(&gw, "/v1/messages/count_tokens", &[], &body).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_model_list_answers_anthropic_clients_in_their_shape() {
    let (gw, _mock) = anthropic_gateway().await;
    let anthropic = gw
        .app
        .client
        .get(gw.app.url("/v1/models"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 200);
    let list: Value = anthropic.json().await.unwrap();
    assert_eq!(list["has_more"], false);
    let data = list["data"].as_array().unwrap();
    assert!(!data.is_empty() && data.iter().all(|m| m["type"] == "model" && m["id"].is_string()), "{list}");
    assert_eq!(list["first_id"], data[0]["id"]);
    let openai = gw.app.client.get(gw.app.url("/v1/models")).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(openai.json::<Value>().await.unwrap()["object"], "list");
    let refused =
        gw.app.client.get(gw.app.url("/v1/models")).header("anthropic-version", "2023-06-01").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(anthropic_error(&refused.json().await.unwrap()).0, "authentication_error");
}

#[tokio::test]
async fn every_route_records_its_name() {
    let gw = Gateway::start(fast_options()).await;
    let local = Mock::start(Flavor::OpenAi).await;
    gw.provider("Local", "openai_compatible", &local.base_url(), 1).await;
    assert_eq!(gw.chat(&chat_body("m")).await.status(), 200);
    assert_eq!(messages(&gw, &messages_body("m", false)).await.status(), 200);
    assert_eq!(responses(&gw, &json!({"model": "m", "input": "hi"})).await.status(), 200);
    let embeddings = gw
        .app
        .client
        .post(gw.app.url("/v1/embeddings"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "m", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(embeddings.status(), 200);
    let mut routes: Vec<String> =
        gw.usage(4).await.iter().map(|r| r["endpoint"].as_str().unwrap().to_owned()).collect();
    routes.sort();
    assert_eq!(routes, ["chat", "embeddings", "messages", "responses"]);
    let log = gw.app.get_value("/api/v1/requests?route=messages", Some(&gw.token)).await;
    let rows = log["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0]["route"], "messages");
    assert_eq!(log["total"], 1);
    let refused = gw.app.get_json("/api/v1/requests?route=nope", Some(&gw.token)).await;
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn aliases_let_an_anthropic_only_agent_be_served_by_another_model() {
    let gw = Gateway::start(fast_options()).await;
    let local = Mock::start(Flavor::OpenAi).await;
    let claude = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &claude.base_url(), 1).await;
    let response = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Local", "kind": "openai_compatible", "base_url": local.base_url(), "api_key": VALID_KEY,
                    "priority": 5, "aliases": {"claude-sonnet-*": "qwen-coder", "fast": "llama-3.1-8b"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["aliases"]["claude-sonnet-*"], "qwen-coder");
    let local_id = created["id"].as_str().unwrap().to_owned();

    // The alias wins over Claude's own family, for every protocol.
    let response = messages(&gw, &messages_body("claude-sonnet-4-5", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-perpetuo-provider"], "Local");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["model"], "claude-sonnet-4-5", "the client sees the name it asked for");
    assert_eq!(local.seen().pop().unwrap().body["model"], "qwen-coder", "the provider is asked for the alias's model");
    assert_eq!(gw.chat(&chat_body("fast")).await.status(), 200);
    assert_eq!(local.seen().pop().unwrap().body["model"], "llama-3.1-8b");
    assert_eq!(messages(&gw, &messages_body("claude-haiku-4-5", false)).await.status(), 200);
    assert_eq!(claude.hits(), 1, "names no alias matches route as before");

    let models: Value =
        gw.app.client.get(gw.app.url("/v1/models")).bearer_auth(&gw.key).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"fast") && !ids.iter().any(|id| id.ends_with('*')), "{ids:?}");

    let records = gw.usage(3).await;
    let aliased = records.iter().find(|r| r["model"] == "claude-sonnet-4-5").unwrap();
    assert_eq!(aliased["served_model"], "qwen-coder");
    let log = gw.app.get_value("/api/v1/requests?model=claude-sonnet-4-5", Some(&gw.token)).await;
    assert_eq!(log["data"][0]["served_model"], "qwen-coder", "{log}");

    // Bad aliases are refused; clearing them puts routing back.
    let bad =
        gw.app.patch_json(&format!("/api/v1/providers/{local_id}"), &gw.token, &json!({"aliases": {"a*b": "m"}})).await;
    assert_eq!(bad.status(), 400);
    let cleared = gw.app.patch_json(&format!("/api/v1/providers/{local_id}"), &gw.token, &json!({"aliases": {}})).await;
    assert_eq!(cleared.status(), 200);
    let served = poll(std::time::Duration::from_secs(5), || async {
        let response = messages(&gw, &messages_body("claude-sonnet-4-5", false)).await;
        (response.headers()["x-perpetuo-provider"] == "Claude").then_some(())
    })
    .await;
    assert!(served.is_some(), "without the alias, Claude serves its own family again");
}
