//! Structured outputs across families: a schema the client asks for reaches every provider in
//! the provider's own terms (OpenAI's `response_format`, Claude's `output_config.format`,
//! Converse's `outputConfig.textFormat`), and the answer comes back as JSON text in the client's
//! protocol. JSON mode where Claude has none goes through a forced tool whose input is the text;
//! where no form exists it is refused, naming the field, never dropped.

use serde_json::{Value, json};

use super::fast_options;
use crate::helpers::*;
use crate::mock::{Flavor, Mock};

fn schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"], "additionalProperties": false})
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    gw.app.client.post(gw.app.url(path)).bearer_auth(&gw.key).json(body).send().await.expect("sent")
}

#[tokio::test]
async fn a_chat_schema_reaches_claude_as_output_config_and_comes_back_as_json() {
    let gw = Gateway::start(fast_options()).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 1).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Plan a trip"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "trip", "schema": schema(), "strict": true}}});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(text).expect("the answer's text is JSON");
    assert_eq!(parsed, json!({"city": "mock", "days": 1}));
    let sent = &anthropic.seen()[0].body;
    assert_eq!(sent["output_config"], json!({"format": {"type": "json_schema", "schema": schema()}}));
    assert!(sent.get("response_format").is_none());

    // Streamed, the schema goes the same way.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    assert_eq!(gw.chat(&streamed).await.status(), 200);
    assert_eq!(anthropic.seen()[1].body["output_config"]["format"]["schema"], schema());

    // JSON mode has no Claude form: answered through a forced tool whose input is the text.
    let mode = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_object"}});
    let answer: Value = gw.chat(&mode).await.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().expect("text, not a tool call");
    assert!(serde_json::from_str::<Value>(text).unwrap().is_object(), "{text}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(anthropic.seen()[2].body["tool_choice"]["type"], "tool");
    let mut streamed_mode = mode.clone();
    streamed_mode["stream"] = json!(true);
    let events = gw.chat(&streamed_mode).await.text().await.unwrap();
    let streamed: String = events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert!(serde_json::from_str::<Value>(&streamed).unwrap().is_object(), "streamed: {streamed:?}");
    assert!(!events.contains("tool_calls"), "no tool call reaches the client: {events}");

    // JSON mode with the client's own tools has no Claude form: refused, naming the field.
    let mut with_tools = mode.clone();
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let refused = gw.chat(&with_tools).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["param"], "response_format", "{error}");
    assert_eq!(anthropic.seen().len(), 4, "nothing was sent for the refused call");
}

#[tokio::test]
async fn a_responses_text_format_reaches_claude_as_output_config() {
    let gw = Gateway::start(fast_options()).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 1).await;
    let body = json!({"model": "claude-sonnet-4-5", "input": "Plan a trip",
        "text": {"format": {"type": "json_schema", "name": "trip", "schema": schema(), "strict": true}}});
    let response = post(&gw, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let text = answer["output"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .find_map(|part| part["text"].as_str())
        .expect("a text part");
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({"city": "mock", "days": 1}));
    assert_eq!(anthropic.seen()[0].body["output_config"]["format"]["schema"], schema());
}

#[tokio::test]
async fn claudes_output_config_reaches_an_openai_provider_as_a_strict_response_format() {
    let gw = Gateway::start(fast_options()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai_compatible", &openai.base_url(), 1).await;
    for format_field in ["output_config", "output_format"] {
        let format = json!({"type": "json_schema", "schema": schema()});
        let mut body = json!({"model": "mock-small", "max_tokens": 256,
            "messages": [{"role": "user", "content": "Plan a trip"}]});
        body[format_field] = if format_field == "output_config" { json!({"format": format}) } else { format };
        let response = post(&gw, "/v1/messages", &body).await;
        assert_eq!(response.status(), 200, "{format_field}");
        let answer: Value = response.json().await.unwrap();
        let text = answer["content"][0]["text"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), json!({"city": "mock", "days": 1}));
        let sent = openai.seen().last().unwrap().body.clone();
        assert_eq!(
            sent["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema(), "strict": true}}),
            "{format_field}"
        );
    }
    // A format of no known type is refused in Anthropic's shape.
    let bad = json!({"model": "mock-small", "max_tokens": 256, "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "yaml"}}});
    let refused = post(&gw, "/v1/messages", &bad).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("output_config"), "{error}");
}

#[tokio::test]
async fn json_mode_on_bedrock_converse_comes_back_as_text_whole_and_streamed() {
    let gw = Gateway::start(fast_options()).await;
    let bedrock = Mock::start(Flavor::Bedrock).await;
    let provider = json!({"label": "Converse", "kind": "bedrock_converse", "base_url": bedrock.base_url(),
        "api_key": crate::mock::bedrock::access_key_json(None), "region": crate::mock::bedrock::REGION});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &provider).await.status(), 201);
    let body = json!({"model": "bedrock_converse/us.amazon.nova-lite-v1:0",
        "messages": [{"role": "user", "content": "A city as JSON"}], "response_format": {"type": "json_object"}});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().expect("text, not a tool call");
    assert!(serde_json::from_str::<Value>(text).unwrap().is_object(), "{text}");
    let sent = bedrock.bedrock_calls().last().unwrap().2.clone();
    assert_eq!(sent["toolConfig"]["toolChoice"]["tool"]["name"], "perpetuo_json_answer");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = gw.chat(&streamed).await.text().await.unwrap();
    let text: String = events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert!(serde_json::from_str::<Value>(&text).unwrap().is_object(), "streamed: {text:?}");
    assert!(!events.contains("tool_calls"), "{events}");
}
