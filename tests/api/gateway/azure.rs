//! Azure OpenAI: deployments under a resource endpoint with an `api-version`, the key in
//! `api-key`, against a mock that requires all three as Azure does. Chat passes through (plain,
//! streamed, tools), Messages clients are translated, Responses and embeddings pass through; an
//! unknown deployment and a content-filter refusal reach the client as clear errors; costs come
//! from OpenAI's prices for a deployment named after its model.

use serde_json::{Value, json};

use super::*;
use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

async fn azure(models: &[&str], aliases: Value) -> (Gateway, Mock, String) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Azure).await;
    mock.set_deployments(models);
    let created = gw
        .app
        .post_json(
            "/api/v1/providers",
            Some(&gw.token),
            &json!({"label": "Azure", "kind": "azure", "base_url": mock.base_url(), "api_key": VALID_KEY,
                    "models": models, "aliases": aliases}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    (gw, mock, created["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn chat_reaches_the_deployment_plain_streamed_and_with_tools() {
    let (gw, mock, id) = azure(&["gpt-4o-mini", "prod-4o"], json!({"gpt-4o": "prod-4o"})).await;
    let test: Value = gw
        .app
        .post_json(&format!("/api/v1/providers/{id}/test"), Some(&gw.token), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true, "the Test button reaches /openai/models with the version: {test}");

    let plain = gw.chat(&chat_body("gpt-4o")).await;
    assert_eq!(plain.status(), 200);
    let answer: Value = plain.json().await.unwrap();
    assert!(answer["choices"][0]["message"]["content"].is_string(), "{answer}");
    let seen = mock.seen().last().unwrap().clone();
    assert_eq!(seen.headers["api-key"], VALID_KEY);
    assert!(seen.headers.get("authorization").is_none(), "Azure's key header, not a bearer");
    assert_eq!(seen.body["model"], "prod-4o", "the alias's deployment");
    // The kind-qualified name takes the same alias (not a deployment named `gpt-4o`).
    assert_eq!(gw.chat(&chat_body("azure/gpt-4o")).await.status(), 200);
    let qualified = mock.seen().last().unwrap().clone();
    assert_eq!(qualified.body["model"], "prod-4o", "azure/gpt-4o takes the alias too");

    let mut stream = chat_body("gpt-4o");
    stream["stream"] = json!(true);
    let streamed = gw.chat(&stream).await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    let tools = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    let called: Value = gw.chat(&tools).await.json().await.unwrap();
    let call = &called["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{called}");
    let mut follow = tools.clone();
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}),
    ]);
    let done: Value = gw.chat(&follow).await.json().await.unwrap();
    assert_eq!(done["choices"][0]["finish_reason"], "stop", "the round trip ends: {done}");

    let records = gw.usage(4).await;
    let priced = records.iter().find(|r| r["model"] == "gpt-4o-mini").unwrap();
    assert_eq!(
        (priced["prompt_tokens"].as_u64(), priced["completion_tokens"].as_u64()),
        (Some(11), Some(7)),
        "{priced}"
    );
    assert_eq!(
        priced["cost_nanos"].as_i64(),
        Some(list_cost("openai", "gpt-4o-mini", priced)),
        "OpenAI's price for a deployment named after its model: {priced}"
    );
}

#[tokio::test]
async fn messages_clients_are_translated_and_responses_and_embeddings_pass_through() {
    let (gw, mock, _) = azure(&["gpt-4o-mini", "embed-3"], json!({})).await;
    let messages = gw
        .app
        .client
        .post(gw.app.url("/v1/messages"))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "azure/gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 200);
    assert_eq!(messages.json::<Value>().await.unwrap()["type"], "message");
    let responses = gw
        .app
        .client
        .post(gw.app.url("/v1/responses"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "azure/gpt-4o-mini", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 200);
    assert!(responses.text().await.unwrap().contains("response.completed"));
    // Passed through to Azure's v1 Responses surface, the deployment as the model.
    let seen = mock.seen().last().unwrap().clone();
    assert_eq!((seen.path.as_str(), seen.body["model"].as_str()), ("/v1/responses", Some("gpt-4o-mini")));
    assert_eq!(seen.headers["api-key"], VALID_KEY);
    let embeddings = gw
        .app
        .client
        .post(gw.app.url("/v1/embeddings"))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "azure/embed-3", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(embeddings.status(), 200);
}

#[tokio::test]
async fn an_unknown_deployment_and_a_content_filter_refusal_are_clear_errors() {
    // The allow-list names a deployment the resource does not have.
    let (gw, _mock, _) = azure(&["gpt-4o-mini"], json!({})).await;
    _mock.set_deployments(&["another"]);
    let missing = gw.chat(&chat_body("gpt-4o-mini")).await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("deployment"), "{body}");

    _mock.set_deployments(&[]);
    let filtered =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "MOCK_CONTENT_FILTER please"}]});
    let refused = gw.chat(&filtered).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "content_filter", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Azure OpenAI's content filter refused the prompt (violence)"),
        "{body}"
    );
}

#[tokio::test]
async fn the_api_version_is_the_providers_and_only_azures() {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Azure).await;
    let provider = |version: &str| json!({"label": "Az", "kind": "azure", "base_url": mock.base_url(), "api_key": VALID_KEY, "api_version": version});
    let bad = gw.app.post_json("/api/v1/providers", Some(&gw.token), &provider("v1; drop")).await;
    assert_eq!(api_error(bad, 400).await["error"]["code"], "invalid_request");
    let other = json!({"label": "O", "kind": "openai", "api_key": VALID_KEY, "api_version": "2024-10-21"});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &other).await.status(), 400);
    let made = gw.app.post_json("/api/v1/providers", Some(&gw.token), &provider("2025-04-01-preview")).await;
    assert_eq!(made.status(), 201);
    assert_eq!(made.json::<Value>().await.unwrap()["api_version"], "2025-04-01-preview");
    assert_eq!(gw.chat(&chat_body("gpt-4o-mini")).await.status(), 200);
    // Without a base URL (the resource's endpoint) an Azure provider cannot be made.
    let no_url = json!({"label": "Az2", "kind": "azure", "api_key": VALID_KEY});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &no_url).await.status(), 400);
}

#[tokio::test]
async fn entra_id_client_credentials_stand_in_for_the_key() {
    use crate::mock::vertex::{ENTRA_CLIENT_ID, ENTRA_SECRET, ENTRA_TENANT};
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::Azure).await;
    let credentials = |secret: &str| {
        json!({"tenant_id": ENTRA_TENANT, "client_id": ENTRA_CLIENT_ID, "client_secret": secret,
               "authority_host": mock.base_url()})
        .to_string()
    };
    let add = |label: &str, secret: &str, priority: i64| {
        json!({"label": label, "kind": "azure", "base_url": mock.base_url(), "api_key": credentials(secret),
               "priority": priority, "models": [format!("dep-{label}")]})
    };
    let made = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add("good", ENTRA_SECRET, 1)).await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["key_preview"], "••••c11e", "the client id's end, never the secret");
    assert_eq!(gw.chat(&chat_body("dep-good")).await.status(), 200);
    assert_eq!(gw.chat(&chat_body("dep-good")).await.status(), 200);
    let seen = mock.seen().last().unwrap().clone();
    assert!(seen.headers.get("api-key").is_none(), "no key header with Entra ID");
    assert!(seen.headers["authorization"].to_str().unwrap().starts_with("Bearer eyJ0eXAi.entra-"));
    assert_eq!(mock.tokens_granted(), 1, "one token for both calls");

    let wrong = gw.app.post_json("/api/v1/providers", Some(&gw.token), &add("bad", "not-the-secret", 2)).await;
    let id = wrong.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(gw.chat(&chat_body("dep-bad")).await.status().is_server_error());
    let flagged = poll(std::time::Duration::from_secs(10), || async {
        let p = gw.app.get_value(&format!("/api/v1/providers/{id}"), Some(&gw.token)).await;
        (p["key_status"] == "rejected").then_some(())
    })
    .await;
    assert!(flagged.is_some(), "Entra ID refused the secret: the provider is flagged");
    assert!(!captured_logs().contains("not-the-secret"), "the secret is never logged");
}
