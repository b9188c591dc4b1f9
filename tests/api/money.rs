//! The money adds up: a hostile tenant drives every path where money could leak (streams cut
//! short on every route and dialect, attempts abandoned after they reached a provider, `n`, odd
//! and missing output bounds, a member trying to zero the prices) against a metered upstream that
//! keeps what it would bill. For every call, what Perpetuo records and charges the budget is
//! never below the provider's bill and never above the worst case it reserved.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::metered::{Metered, Plan};

/// Dollars per million tokens at every provider: input 1, output 2 (billionths: 1,000 and 2,000
/// a token).
const IN_NANOS: i64 = 1_000;
const OUT_NANOS: i64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    Chat,
    Messages,
    Responses,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Read {
    Whole,
    Stream,
    /// Read this many events of the stream, then hang up.
    Cut(usize),
}

struct Case {
    tag: String,
    route: Route,
    model: &'static str,
    read: Read,
    /// Extra body fields (bounds, `n`).
    extra: Value,
    what: &'static str,
}

fn prompt(tag: &str) -> String {
    format!("[call:{tag}] {}", "Tell me about the history of the printing press in a few sentences. ".repeat(12))
}

fn body(case: &Case) -> Value {
    let stream = !matches!(case.read, Read::Whole);
    let mut body = match case.route {
        Route::Chat => {
            json!({"model": case.model, "stream": stream, "messages": [{"role": "user", "content": prompt(&case.tag)}]})
        }
        Route::Messages => {
            json!({"model": case.model, "stream": stream, "max_tokens": 60, "messages": [{"role": "user", "content": prompt(&case.tag)}]})
        }
        Route::Responses => json!({"model": case.model, "stream": stream, "input": prompt(&case.tag)}),
    };
    if let (Some(body), Some(extra)) = (body.as_object_mut(), case.extra.as_object()) {
        for (k, v) in extra {
            body.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Sends a case; returns the status and the request id.
async fn send(gw: &Gateway, case: &Case) -> (u16, String) {
    let path = match case.route {
        Route::Chat => "/v1/chat/completions",
        Route::Messages => "/v1/messages",
        Route::Responses => "/v1/responses",
    };
    let response = gw
        .app
        .client
        .post(gw.app.url(path))
        .bearer_auth(&gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body(case))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    match case.read {
        Read::Whole | Read::Stream => {
            let _ = response.text().await;
        }
        Read::Cut(events) => {
            let mut stream = response.bytes_stream();
            let mut seen = 0;
            let mut text = String::new();
            while seen < events {
                let Some(Ok(chunk)) = stream.next().await else { break };
                text.push_str(&String::from_utf8_lossy(&chunk));
                seen = text.matches("\n\n").count();
            }
            // Hanging up: the stream and its connection are dropped here.
        }
    }
    (status, id)
}

/// Providers of every kind but `openai_compatible` in front of the metered upstream (priorities 3
/// to 10), each model priced at $1 in and $2 out a million tokens, and a workspace budget of
/// $100.
pub async fn every_kind(gw: &Gateway, upstream: &Metered) {
    gw.provider("OpenAI", "openai", &upstream.base_url(false), 3).await;
    gw.provider("Anthropic", "anthropic", &upstream.base_url(true), 4).await;
    // Azure OpenAI: the resource's root, the deployment `gpt-metered`.
    gw.provider("Azure", "azure", &upstream.base_url(true), 5).await;
    // Claude on Vertex AI: the service account's token minted at the metered upstream's endpoint.
    let root = upstream.base_url(true);
    let key = crate::mock::vertex::service_account(&format!("{root}/token"), crate::mock::vertex::SA_PRIVATE_KEY);
    let vertex = json!({"label": "Vertex", "kind": "vertex", "base_url": root, "api_key": key, "priority": 6});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &vertex).await.status(), 201);
    // Gemini's own API under the metered upstream's `/v1beta`.
    gw.provider("Gemini", "gemini", &format!("{root}/v1beta"), 7).await;
    // Claude on Amazon Bedrock, every call SigV4-signed.
    let key = crate::mock::bedrock::access_key_json(None);
    let bedrock = json!({"label": "Bedrock", "kind": "bedrock", "base_url": root, "api_key": key, "priority": 8,
                         "region": crate::mock::bedrock::REGION});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &bedrock).await.status(), 201);
    let mut converse = bedrock.clone();
    converse["kind"] = json!("bedrock_converse");
    converse["priority"] = json!(9);
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &converse).await.status(), 201);
    // Gemini on Vertex AI, with the same service account as Claude's.
    let key = crate::mock::vertex::service_account(&format!("{root}/token"), crate::mock::vertex::SA_PRIVATE_KEY);
    let vertex_gemini =
        json!({"label": "Vertex Gemini", "kind": "vertex_gemini", "base_url": root, "api_key": key, "priority": 10});
    assert_eq!(gw.app.post_json("/api/v1/providers", Some(&gw.token), &vertex_gemini).await.status(), 201);
    for (kind, model) in [
        ("openai_compatible", "metered-gpt"),
        ("openai", "gpt-metered"),
        ("anthropic", "claude-metered"),
        ("azure", "gpt-metered"),
        ("vertex", "claude-metered@20250101"),
        ("gemini", "gemini-metered"),
        ("bedrock", "anthropic.claude-metered-v1:0"),
        ("bedrock_converse", "amazon.nova-metered-v1:0"),
        ("vertex_gemini", "gemini-metered-vertex"),
    ] {
        let price = json!({"kind": kind, "model": model, "input_per_million": 1.0, "output_per_million": 2.0});
        assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    }
    let budget = json!({"usd_limit": 100.0});
    let set = gw.app.client.put(gw.app.url("/api/v1/budgets/workspace")).bearer_auth(&gw.token).json(&budget);
    assert_eq!(set.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn every_call_is_charged_at_least_the_providers_bill_and_at_most_its_reservation() {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    options.settings.upstream.first_byte_timeout = Duration::from_millis(500);
    options.settings.upstream.total_timeout = Duration::from_secs(30);
    options.settings.budget_default_max_tokens = 100;
    let gw = Gateway::start(options).await;
    let upstream = Metered::start().await;
    // Two OpenAI-compatible accounts (the first is tried first), OpenAI itself, and Anthropic, all
    // played by the metered upstream.
    gw.provider("Slow", "openai_compatible", &upstream.base_url(false), 1).await;
    gw.provider("Fast", "openai_compatible", &upstream.base_url(false), 2).await;
    every_kind(&gw, &upstream).await;

    // A member of the workspace tries to make every call free: refused, the prices stand.
    let invite: Value = gw.app.post_json("/api/v1/invites", Some(&gw.token), &json!({})).await.json().await.unwrap();
    let joined = gw
        .app
        .post_json(
            "/api/v1/auth/signup",
            None,
            &json!({"email": email("member"), "password": PASSWORD, "invite": invite["token"]}),
        )
        .await;
    assert_eq!(joined.status(), 201);
    let member: Value = joined.json().await.unwrap();
    let member = member["token"].as_str().unwrap().to_owned();
    let zero =
        json!({"kind": "anthropic", "model": "claude-metered", "input_per_million": 0.0, "output_per_million": 0.0});
    assert_eq!(gw.app.post_json("/api/v1/prices", Some(&member), &zero).await.status(), 403);

    let compatible = "openai_compatible/metered-gpt";
    let claude = "anthropic/claude-metered";
    let openai = "openai/gpt-metered";
    let azure = "azure/gpt-metered";
    let vertex = "vertex/claude-metered@20250101";
    let gemini = "gemini/gemini-metered";
    let bedrock = "bedrock/anthropic.claude-metered-v1:0";
    let converse = "bedrock_converse/amazon.nova-metered-v1:0";
    let vertex_gemini = "vertex_gemini/gemini-metered-vertex";
    let long = Plan { length: 300, ..Plan::default() };
    let mut cases = Vec::new();
    let mut case = |route, model, read, extra: Value, what, plan: Option<Plan>| {
        let tag = format!("c{}", cases.len());
        if let Some(plan) = plan {
            upstream.plan(&tag, plan);
        }
        cases.push(Case { tag, route, model, read, extra, what });
    };
    // Streams cut short, every route and dialect, passed through and translated.
    for (route, model, what) in [
        (Route::Chat, compatible, "chat, passed through, cut"),
        (Route::Chat, openai, "chat to OpenAI, passed through, cut"),
        (Route::Chat, claude, "chat to Anthropic, translated, cut"),
        (Route::Messages, claude, "messages, passed through, cut"),
        (Route::Messages, compatible, "messages to OpenAI-style, translated, cut"),
        (Route::Responses, openai, "responses to OpenAI, passed through, cut"),
        (Route::Responses, compatible, "responses to OpenAI-style, translated, cut"),
        (Route::Responses, claude, "responses to Anthropic, translated, cut"),
        (Route::Chat, azure, "chat to Azure, passed through, cut"),
        (Route::Messages, azure, "messages to Azure, translated, cut"),
        (Route::Responses, azure, "responses to Azure, passed through, cut"),
        (Route::Messages, vertex, "messages to Vertex AI, passed through, cut"),
        (Route::Chat, vertex, "chat to Vertex AI, translated, cut"),
        (Route::Responses, vertex, "responses to Vertex AI, translated, cut"),
        (Route::Chat, gemini, "chat to Gemini, translated, cut"),
        (Route::Messages, gemini, "messages to Gemini, translated, cut"),
        (Route::Responses, gemini, "responses to Gemini, translated, cut"),
        (Route::Messages, bedrock, "messages to Bedrock, passed through, cut"),
        (Route::Chat, bedrock, "chat to Bedrock, translated, cut"),
        (Route::Responses, bedrock, "responses to Bedrock, translated, cut"),
        (Route::Chat, converse, "chat to Bedrock Converse, translated, cut"),
        (Route::Messages, converse, "messages to Bedrock Converse, translated, cut"),
        (Route::Responses, converse, "responses to Bedrock Converse, translated, cut"),
        (Route::Chat, vertex_gemini, "chat to Gemini on Vertex AI, translated, cut"),
        (Route::Messages, vertex_gemini, "messages to Gemini on Vertex AI, translated, cut"),
    ] {
        case(route, model, Read::Cut(14), json!({}), what, Some(long));
    }
    // The same, read to the end.
    for (route, model, what) in [
        (Route::Chat, compatible, "chat, passed through, whole stream"),
        (Route::Chat, claude, "chat to Anthropic, whole stream"),
        (Route::Messages, claude, "messages, whole stream"),
        (Route::Messages, compatible, "messages to OpenAI-style, whole stream"),
        (Route::Responses, openai, "responses to OpenAI, whole stream"),
        (Route::Responses, claude, "responses to Anthropic, whole stream"),
        (Route::Chat, azure, "chat to Azure, whole stream"),
        (Route::Responses, azure, "responses to Azure, whole stream"),
        (Route::Messages, vertex, "messages to Vertex AI, whole stream"),
        (Route::Chat, vertex, "chat to Vertex AI, whole stream"),
        (Route::Chat, gemini, "chat to Gemini, whole stream"),
        (Route::Messages, gemini, "messages to Gemini, whole stream"),
        (Route::Messages, bedrock, "messages to Bedrock, whole stream"),
        (Route::Chat, bedrock, "chat to Bedrock, whole stream"),
        (Route::Chat, converse, "chat to Bedrock Converse, whole stream"),
        (Route::Messages, converse, "messages to Bedrock Converse, whole stream"),
        (Route::Chat, vertex_gemini, "chat to Gemini on Vertex AI, whole stream"),
    ] {
        case(route, model, Read::Stream, json!({}), what, None);
    }
    // Attempts abandoned after the first-byte timeout (the slow provider still generates and
    // bills them), then served by the next provider.
    let slow = Plan { first_delay: Duration::from_millis(1500), ..Plan::default() };
    case(Route::Chat, "metered-gpt", Read::Whole, json!({}), "abandoned attempt, then fallback", Some(slow));
    case(Route::Chat, "metered-gpt", Read::Stream, json!({}), "abandoned stream attempt, then fallback", Some(slow));
    // `n` multiplies the output; odd and missing bounds.
    case(Route::Chat, compatible, Read::Whole, json!({"n": 3, "max_tokens": 20}), "n = 3", None);
    case(Route::Chat, compatible, Read::Stream, json!({"n": 3, "max_tokens": 20}), "n = 3, streamed", None);
    case(
        Route::Chat,
        claude,
        Read::Whole,
        json!({"max_completion_tokens": null, "max_tokens": 1}),
        "null max_completion_tokens, max_tokens 1, to Anthropic",
        None,
    );
    case(Route::Chat, compatible, Read::Whole, json!({}), "no bound under a budget (300 wanted)", Some(long));
    case(Route::Responses, claude, Read::Whole, json!({}), "responses, no bound, to Anthropic", Some(long));
    case(Route::Chat, converse, Read::Whole, json!({}), "chat to Bedrock Converse, no bound", Some(long));
    case(Route::Messages, bedrock, Read::Whole, json!({}), "messages to Bedrock, whole answer", None);
    case(Route::Chat, vertex_gemini, Read::Whole, json!({}), "chat to Gemini on Vertex AI, no bound", Some(long));
    case(Route::Chat, compatible, Read::Stream, json!({}), "no bound, streamed", Some(long));
    // Structured outputs, each provider in its own terms: a schema, and JSON mode (a forced tool
    // on Claude and Converse, whose definition and tool-use prompt the provider bills).
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"], "additionalProperties": false});
    let json_schema = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "trip", "schema": schema, "strict": true}}});
    let json_mode = json!({"response_format": {"type": "json_object"}});
    for (model, what) in [
        (claude, "chat to Anthropic, a JSON schema"),
        (gemini, "chat to Gemini, a JSON schema"),
        (converse, "chat to Bedrock Converse, a JSON schema"),
        (compatible, "chat, passed through, a JSON schema"),
    ] {
        case(Route::Chat, model, Read::Whole, json_schema.clone(), what, None);
    }
    for (model, read, what) in [
        (claude, Read::Whole, "chat to Anthropic, JSON mode (a forced tool)"),
        (claude, Read::Stream, "chat to Anthropic, JSON mode (a forced tool), streamed"),
        (converse, Read::Whole, "chat to Bedrock Converse, JSON mode (a forced tool)"),
        (vertex, Read::Whole, "chat to Vertex AI, JSON mode (a forced tool)"),
    ] {
        case(Route::Chat, model, read, json_mode.clone(), what, None);
    }
    case(
        Route::Messages,
        compatible,
        Read::Whole,
        json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        "messages to OpenAI-style, a JSON schema",
        None,
    );
    case(
        Route::Messages,
        claude,
        Read::Whole,
        json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        "messages, passed through, a JSON schema",
        None,
    );

    // Bad bounds are refused before any provider sees them.
    for bad in [json!({"max_tokens": -5}), json!({"max_tokens": 1.5}), json!({"max_tokens": "10"}), json!({"n": 500})] {
        let refused = Case {
            tag: "refused".into(),
            route: Route::Chat,
            model: compatible,
            read: Read::Whole,
            extra: bad.clone(),
            what: "",
        };
        let response = gw.chat(&body(&refused)).await;
        assert_eq!(response.status(), 400, "{bad}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    }
    assert_eq!(upstream.bill("refused").requests, 0, "no provider saw a refused bound");

    let mut sent = Vec::new();
    for case in &cases {
        let (status, id) = send(&gw, case).await;
        assert!(!id.is_empty(), "{}: a request id", case.what);
        sent.push((status, id));
    }
    usage_settled(&gw.app, (cases.len() + 4) as u64).await;
    let records = gw.usage(cases.len() + 4).await;
    let by_id: std::collections::HashMap<String, Value> =
        records.into_iter().map(|r| (r["request_id"].as_str().unwrap_or_default().to_owned(), r)).collect();

    eprintln!(
        "\n| call | status | provider billed (in+out tokens, nano-$) | recorded (tokens, nano-$) | reserved (tokens, nano-$) | estimated |\n|---|---|---|---|---|---|"
    );
    let mut recorded_total = 0i64;
    for (case, (status, id)) in cases.iter().zip(&sent) {
        let record = by_id.get(id).unwrap_or_else(|| panic!("{}: no record for {id}", case.what));
        let bill = upstream.bill(&case.tag);
        let billed_tokens = (bill.prompt + bill.output) as i64;
        let billed_nanos = bill.prompt as i64 * IN_NANOS + bill.output as i64 * OUT_NANOS;
        let tokens = record["prompt_tokens"].as_i64().unwrap() + record["completion_tokens"].as_i64().unwrap();
        let nanos = record["cost_nanos"].as_i64().unwrap_or_else(|| panic!("{}: priced", case.what));
        let reserved_tokens = record["reserved_tokens"].as_i64().unwrap_or_else(|| panic!("{}: reserved", case.what));
        let reserved_nanos = record["reserved_nanos"].as_i64().unwrap();
        eprintln!(
            "| {} | {status} | {}+{} = {billed_tokens}, {billed_nanos} | {tokens}, {nanos} | {reserved_tokens}, {reserved_nanos} | {} |",
            case.what,
            bill.prompt,
            bill.output,
            record["estimated"].as_bool().unwrap_or(false)
        );
        assert!(bill.requests >= 1, "{}: reached the provider", case.what);
        assert!(tokens >= billed_tokens, "{}: recorded {tokens} tokens, the provider bills {billed_tokens}", case.what);
        assert!(nanos >= billed_nanos, "{}: recorded {nanos}, the provider bills {billed_nanos}", case.what);
        assert!(tokens <= reserved_tokens, "{}: recorded {tokens} tokens, reserved {reserved_tokens}", case.what);
        assert!(nanos <= reserved_nanos, "{}: recorded {nanos}, reserved {reserved_nanos}", case.what);
        if case.what.starts_with("abandoned") {
            assert_eq!(record["estimated"], true, "{}: says it is an estimate", case.what);
        }
        if matches!(case.read, Read::Cut(_)) {
            // The client hung up; the provider's answer was read to its end: exactly its bill.
            assert_ne!(record["estimated"], true, "{}: the provider's own usage", case.what);
            assert_eq!((tokens, nanos), (billed_tokens, billed_nanos), "{}: exactly the bill", case.what);
        }
        recorded_total += nanos;
    }
    // The budget was charged exactly what the records say.
    let spent = poll(Duration::from_secs(60), || async {
        let list = gw.app.get_value("/api/v1/budgets", Some(&gw.token)).await;
        let view = list["data"].as_array()?.iter().find(|b| b["scope"]["kind"] == "workspace")?.clone();
        (view["reserved_usd"].as_f64() == Some(0.0))
            .then(|| (view["spent_usd"].as_f64().unwrap_or(0.0) * 1e9).round() as i64)
    })
    .await
    .expect("every hold settled");
    let refused_records: i64 =
        by_id.values().filter(|r| r["status"] == 400).filter_map(|r| r["cost_nanos"].as_i64()).sum();
    assert_eq!(spent, recorded_total + refused_records, "the budget's spend is the records' sum");
    // The abandoned attempts were seen twice by the provider, and charged for both.
    for case in cases.iter().filter(|c| c.what.starts_with("abandoned")) {
        assert_eq!(upstream.bill(&case.tag).requests, 2, "{}", case.what);
    }
}
