//! Prices as the providers bill them, through the gateway: Anthropic's 1-hour cache writes and
//! web searches, long-context tiers, and work the request does not carry (a conversation stored at
//! the provider) reserved at the model's whole context window under a budget.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

async fn gateway(flavor: Flavor, kind: &str, base: &str) -> (Gateway, Mock) {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    let gw = Gateway::start(options).await;
    let mock = Mock::start(flavor).await;
    let url = if base.is_empty() { mock.base_url() } else { format!("http://{}{base}", mock.addr) };
    gw.provider("P", kind, &url, 1).await;
    (gw, mock)
}

#[tokio::test]
async fn one_hour_cache_writes_and_web_searches_are_charged_as_anthropic_bills_them() {
    let (gw, mock) = gateway(Flavor::Anthropic, "anthropic", "").await;
    mock.set_tokens(100, 20);
    mock.set_cache(0, 1_000);
    mock.set_usage_extra(
        json!({"cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400},
                                "server_tool_use": {"web_search_requests": 2}}),
    );
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "Search the tides"}]});
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .bearer_auth(&gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["cache_creation"]["ephemeral_1h_input_tokens"], 400, "{answer}");
    let record = &gw.usage(1).await[0];
    // Claude Sonnet 4.5: input $3, 5-minute writes $3.75, 1-hour writes $6, output $15 a million;
    // web search $10 a thousand.
    let expected = (100.0 * 3.0 + 600.0 * 3.75 + 400.0 * 6.0 + 20.0 * 15.0) as i64 * 1000 + 2 * 10_000_000;
    assert_eq!(record["cost_nanos"].as_i64(), Some(expected), "{record}");
    assert_eq!(record["cache_write_1h_tokens"], 400, "{record}");
    assert_eq!(record["web_search_requests"], 2, "{record}");
}

#[tokio::test]
async fn a_long_prompt_is_charged_at_the_models_long_context_rates() {
    let (gw, mock) = gateway(Flavor::Gemini, "gemini", "/v1beta").await;
    mock.set_tokens(250_000, 100);
    let response = gw.chat(&chat_body("gemini/gemini-2.5-pro")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let record = &gw.usage(1).await[0];
    // Gemini 2.5 Pro past 200k input tokens: $2.50 in, $15 out (not $1.25 and $10).
    assert_eq!(record["cost_nanos"].as_i64(), Some((250_000.0 * 2.5 + 100.0 * 15.0) as i64 * 1000), "{record}");
}

#[tokio::test]
async fn a_stored_conversation_reserves_the_context_window_or_is_refused_naming_the_field() {
    let (gw, _mock) = gateway(Flavor::OpenAi, "openai", "").await;
    let budget = json!({"usd_limit": 100.0, "allow_unpriced": true});
    let set = gw.app.client.put(gw.app.url("/api/v1/budgets/workspace")).bearer_auth(&gw.token).json(&budget);
    assert_eq!(set.send().await.unwrap().status(), 200);
    let call = |model: &str| json!({"model": model, "input": "And then?", "previous_response_id": "resp_earlier", "max_output_tokens": 50});
    // A model whose context window is known: reserved for all of it.
    let known = gw.app.post_json("/v1/responses", Some(&gw.key), &call("openai/gpt-4o")).await;
    assert_eq!(known.status(), 200, "{}", known.text().await.unwrap());
    let record = &gw.usage(1).await[0];
    assert!(record["reserved_tokens"].as_i64().unwrap() >= 128_000, "{record}");
    // One whose window is not known: refused, the field named, nothing sent.
    let unknown = gw.app.post_json("/v1/responses", Some(&gw.key), &call("openai/mock-small")).await;
    assert_eq!(unknown.status(), 400);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["error"]["param"], "previous_response_id", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("context window"), "{error}");
    // Legacy `functions` count in the prompt's estimate.
    let plain = json!({"model": "openai/gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]});
    let mut with_functions = plain.clone();
    with_functions["functions"] = json!([{"name": "get_weather", "description": "The weather in a city, today and for the coming week.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city's name"}}}}]);
    assert_eq!(gw.chat(&plain).await.status(), 200);
    assert_eq!(gw.chat(&with_functions).await.status(), 200);
    let records = gw.usage(4).await;
    let chats: Vec<i64> =
        records.iter().filter(|r| r["endpoint"] == "chat").map(|r| r["reserved_tokens"].as_i64().unwrap()).collect();
    assert!(chats[1] > chats[0] + 400, "functions are reserved for: {chats:?}");
}

/// A whole answer whose provider reported no usage is charged its estimate (the prompt on the high
/// side, the output the answer holds), said to be one, never recorded as free.
#[tokio::test]
async fn an_answer_without_usage_is_charged_its_estimate_on_every_family() {
    for (flavor, kind, base, model, path) in [
        (Flavor::OpenAi, "openai", "", "openai/gpt-4o", "/v1/chat/completions"),
        (Flavor::OpenAi, "openai", "", "openai/gpt-4o", "/v1/responses"),
        (Flavor::OpenAi, "openai", "", "openai/text-embedding-3-small", "/v1/embeddings"),
        (Flavor::Anthropic, "anthropic", "", "anthropic/claude-sonnet-4-5", "/v1/messages"),
        (Flavor::Anthropic, "anthropic", "", "anthropic/claude-sonnet-4-5", "/v1/chat/completions"),
        (Flavor::Gemini, "gemini", "/v1beta", "gemini/gemini-2.5-flash", "/v1/chat/completions"),
    ] {
        let (gw, mock) = gateway(flavor, kind, base).await;
        mock.set_no_usage();
        let body = match path {
            "/v1/responses" => json!({"model": model, "input": "Tell me about the sea"}),
            "/v1/embeddings" => json!({"model": model, "input": "Tell me about the sea"}),
            _ => {
                json!({"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "Tell me about the sea"}]})
            }
        };
        let response = gw
            .app
            .client
            .post(gw.app.url(path))
            .bearer_auth(&gw.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{kind} {path}: {}", response.text().await.unwrap());
        let record = &gw.usage(1).await[0];
        let what = format!("{kind} {path}: {record}");
        assert_eq!(record["estimated"], true, "{what}");
        assert!(record["prompt_tokens"].as_u64().unwrap() >= 5, "{what}");
        if path != "/v1/embeddings" {
            assert!(record["completion_tokens"].as_u64().unwrap() >= 3, "the answer's words are charged: {what}");
        }
        assert!(record["cost_nanos"].as_i64().unwrap() > 0, "{what}");
    }
}
