//! The money, case by case: every route (chat, Messages, Responses, embeddings) at every provider
//! kind, for every way a call can go (answered whole, streamed, cut by the client, read slowly,
//! left before its answer, refused by the provider with a 5xx or a 4xx, broken by the provider's
//! own error event), against the metered provider that bills what it did. For each call: the
//! status the client got; exactly one record; the record equal to the provider's bill when it is
//! not an estimate, and between the bill and the reservation when it is; and the reservation no
//! more than the prompt's ceiling plus the bound. Every case is checked and every failure listed
//! before the test fails, so one broken path cannot hide another.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::metered::{Fail, Metered, Plan};

const IN_NANOS: i64 = 1_000;
const OUT_NANOS: i64 = 2_000;
/// The output bound every case asks for.
const BOUND: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Messages,
    Responses,
    Embeddings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Whole,
    Streamed,
    /// The client reads a few events of the stream and hangs up.
    Cut,
    /// The client reads the stream a little at a time.
    Slow,
    /// The client gives up before the answer begins.
    Gone,
    /// The provider answers 500 (every attempt).
    ServerError,
    /// The provider refuses the request with a 400.
    ClientError,
    /// The provider breaks the stream with its own error event.
    ErrorEvent,
}

impl How {
    fn stream(self) -> bool {
        matches!(self, Self::Streamed | Self::Cut | Self::Slow | Self::ErrorEvent)
    }

    fn plan(self) -> Plan {
        let base = Plan { length: 200, gap: Duration::from_millis(1), ..Plan::default() };
        match self {
            Self::Whole | Self::Streamed | Self::Cut | Self::Slow => base,
            Self::Gone => Plan { first_delay: Duration::from_millis(600), ..base },
            Self::ServerError => Plan { fail: Fail::Status(500), ..base },
            Self::ClientError => Plan { fail: Fail::Status(400), ..base },
            Self::ErrorEvent => Plan { fail: Fail::ErrorAfter(10), ..base },
        }
    }

    /// The status the client gets (`None`: it left before any).
    fn status(self) -> Option<u16> {
        match self {
            Self::Whole | Self::Streamed | Self::Cut | Self::Slow | Self::ErrorEvent => Some(200),
            Self::Gone => None,
            Self::ServerError => Some(502),
            Self::ClientError => Some(400),
        }
    }
}

/// Every kind the metered upstream plays, and the model the call names there.
const KINDS: [(&str, &str); 9] = [
    ("openai_compatible", "openai_compatible/metered-gpt"),
    ("openai", "openai/gpt-metered"),
    ("anthropic", "anthropic/claude-metered"),
    ("azure", "azure/gpt-metered"),
    ("vertex", "vertex/claude-metered@20250101"),
    ("gemini", "gemini/gemini-metered"),
    ("bedrock", "bedrock/anthropic.claude-metered-v1:0"),
    ("bedrock_converse", "bedrock_converse/amazon.nova-metered-v1:0"),
    ("vertex_gemini", "vertex_gemini/gemini-metered-vertex"),
];

struct Case {
    tag: String,
    route: Route,
    kind: &'static str,
    model: &'static str,
    how: How,
    /// The case's own key: its record is found by it whether or not the client saw an answer.
    key: String,
    key_id: String,
}

impl Case {
    fn name(&self) -> String {
        format!("{:?} at {} ({:?})", self.route, self.kind, self.how)
    }

    fn prompt(&self) -> String {
        format!("[call:{}] Tell me about the tides of the northern sea, at some length.", self.tag)
    }

    fn body(&self) -> Value {
        let stream = self.how.stream();
        match self.route {
            Route::Chat => json!({"model": self.model, "stream": stream, "max_tokens": BOUND,
                                  "messages": [{"role": "user", "content": self.prompt()}]}),
            Route::Messages => json!({"model": self.model, "stream": stream, "max_tokens": BOUND,
                                      "messages": [{"role": "user", "content": self.prompt()}]}),
            Route::Responses => {
                json!({"model": self.model, "stream": stream, "max_output_tokens": BOUND, "input": self.prompt()})
            }
            Route::Embeddings => json!({"model": self.model, "input": self.prompt()}),
        }
    }

    fn path(&self) -> &'static str {
        match self.route {
            Route::Chat => "/v1/chat/completions",
            Route::Messages => "/v1/messages",
            Route::Responses => "/v1/responses",
            Route::Embeddings => "/v1/embeddings",
        }
    }
}

/// The cases: every route at every kind that serves it, every way.
fn matrix() -> Vec<(Route, &'static str, &'static str, How)> {
    let mut cases = Vec::new();
    for route in [Route::Chat, Route::Messages, Route::Responses, Route::Embeddings] {
        for (kind, model) in KINDS {
            let embeds = matches!(kind, "openai" | "openai_compatible" | "azure");
            if route == Route::Embeddings && !embeds {
                continue;
            }
            for how in [
                How::Whole,
                How::Streamed,
                How::Cut,
                How::Slow,
                How::Gone,
                How::ServerError,
                How::ClientError,
                How::ErrorEvent,
            ] {
                if route == Route::Embeddings && how.stream() {
                    continue;
                }
                cases.push((route, kind, model, how));
            }
        }
    }
    cases
}

/// Sends a case as its client would; the status it got, if any.
async fn send(gw: &Gateway, case: &Case) -> Option<u16> {
    let timeout = if case.how == How::Gone { Duration::from_millis(200) } else { Duration::from_secs(60) };
    let client = reqwest::Client::builder().timeout(timeout).no_proxy().build().unwrap();
    let sent = client
        .post(gw.app.url(case.path()))
        .bearer_auth(&case.key)
        .header("anthropic-version", "2023-06-01")
        .json(&case.body())
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => return None,
    };
    let status = response.status().as_u16();
    let mut stream = response.bytes_stream();
    let mut events = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        events += String::from_utf8_lossy(&chunk).matches("\n\n").count();
        match case.how {
            How::Cut if events >= 5 => break,
            How::Slow => tokio::time::sleep(Duration::from_millis(3)).await,
            _ => {}
        }
    }
    Some(status)
}

/// What is wrong with one case's record, if anything.
fn check(case: &Case, status: Option<u16>, records: &[&Value], bill: crate::metered::Bill) -> Vec<String> {
    let mut wrong = Vec::new();
    if status != case.how.status() {
        wrong.push(format!("status {status:?}, expected {:?}", case.how.status()));
    }
    let [record] = records else {
        wrong.push(format!("{} records, expected one", records.len()));
        return wrong;
    };
    let tokens = |f: &str| record[f].as_u64().unwrap_or(0);
    let (prompt, output) = (tokens("prompt_tokens"), tokens("completion_tokens"));
    let nanos = record["cost_nanos"].as_i64();
    let billed_nanos = bill.prompt as i64 * IN_NANOS + bill.output as i64 * OUT_NANOS;
    let estimated = record["estimated"] == true;
    if case.how == How::Gone && record["status"] != 499 {
        wrong.push(format!("recorded status {}, expected 499", record["status"]));
    }
    if !estimated {
        if (prompt, output) != (bill.prompt, bill.output) {
            wrong.push(format!(
                "recorded {prompt}+{output} tokens, the provider billed {}+{}",
                bill.prompt, bill.output
            ));
        }
        if nanos.unwrap_or(0) != billed_nanos {
            wrong.push(format!("recorded {nanos:?} nano-dollars, the provider billed {billed_nanos}"));
        }
    } else {
        if prompt + output < bill.prompt + bill.output || nanos.unwrap_or(0) < billed_nanos {
            wrong.push(format!(
                "estimated {prompt}+{output} tokens ({nanos:?}), below the bill {}+{} ({billed_nanos})",
                bill.prompt, bill.output
            ));
        }
        let reserved = (record["reserved_tokens"].as_u64(), record["reserved_nanos"].as_i64());
        if reserved.0.is_some_and(|r| prompt + output > r) || reserved.1.is_some_and(|r| nanos.unwrap_or(0) > r) {
            wrong.push(format!("estimated {prompt}+{output} ({nanos:?}), above the reservation {reserved:?}"));
        }
    }
    // The reservation: the prompt's estimate (its text with the estimate's margin, and framing)
    // plus the bound.
    if let Some(reserved) = record["reserved_tokens"].as_u64() {
        // Short prompt text (the prompt, its role and their line ends) is bounded by its length.
        let gathered = case.prompt().len() + "user".len() + 2;
        let text = if gathered <= perpetuo_core::usage::estimate::SHORT_BYTES {
            gathered as u64
        } else {
            let text = tiktoken_rs::o200k_base_singleton().encode_ordinary(&format!("{} user", case.prompt())).len();
            text as u64 + text as u64 * 25 / 100
        };
        let ceiling = text + 16 + 3 + 4 + 8;
        let bound = if case.route == Route::Embeddings { 100 } else { BOUND };
        if reserved > ceiling + bound {
            wrong.push(format!(
                "reserved {reserved} tokens, more than the prompt's estimate {ceiling} plus the bound {bound}"
            ));
        }
    } else {
        wrong.push("no reservation recorded under the budget".into());
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_at_every_kind_every_way_is_charged_what_the_provider_bills() {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    options.settings.upstream.total_timeout = Duration::from_secs(30);
    options.settings.upstream.max_attempts = 2;
    options.settings.budget_default_max_tokens = 100;
    let gw = Gateway::start(options).await;
    let upstream = Metered::start().await;
    gw.provider("Compatible", "openai_compatible", &upstream.base_url(false), 1).await;
    crate::money::every_kind(&gw, &upstream).await;
    let mut cases = Vec::new();
    for (i, (route, kind, model, how)) in matrix().into_iter().enumerate() {
        let tag = format!("m{i}");
        upstream.plan(&tag, how.plan());
        let (key_id, key) = gw.app.add_key(&gw.token, &tag).await;
        cases.push(Case { tag, route, kind, model, how, key, key_id });
    }
    // Eight at a time (each its own tag, key and record).
    let gw = Arc::new(gw);
    let cases = Arc::new(cases);
    let mut statuses = vec![None; cases.len()];
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < cases.len() || !running.is_empty() {
        while next < cases.len() && running.len() < 8 {
            let (gw, cases, i) = (Arc::clone(&gw), Arc::clone(&cases), next);
            running.spawn(async move { (i, send(&gw, &cases[i]).await) });
            next += 1;
        }
        if let Some(done) = running.join_next().await {
            let (i, status) = done.unwrap();
            statuses[i] = status;
        }
    }
    // Every call, answered or not, leaves its record (a client that left, once its call ends).
    let all = poll(Duration::from_secs(60), || async {
        let rows = ledger_records(&gw.app.state.db, &gw.workspace).await;
        (rows.len() >= cases.len()).then_some(rows)
    })
    .await
    .unwrap_or_else(|| panic!("fewer records than the {} calls", cases.len()));
    let mut failures = Vec::new();
    for (case, status) in cases.iter().zip(&statuses) {
        let records: Vec<&Value> = all.iter().filter(|r| r["key_id"] == case.key_id.as_str()).collect();
        for wrong in check(case, *status, &records, upstream.bill(&case.tag)) {
            failures.push(format!("{}: {wrong}", case.name()));
        }
    }
    // What the cases came to, by way: records equal to the bill, and estimates within it.
    let mut table = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for case in cases.iter() {
        let estimated = all.iter().any(|r| r["key_id"] == case.key_id.as_str() && r["estimated"] == true);
        let row = table.entry(format!("{:?}", case.how)).or_default();
        if estimated { row.1 += 1 } else { row.0 += 1 }
    }
    for (how, (exact, estimated)) in &table {
        eprintln!("{how:12} exact {exact:3}  estimated {estimated:3}");
    }
    eprintln!("{} cases, {} failures", cases.len(), failures.len());
    assert!(failures.is_empty(), "{} of {} cases are wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
    // The budget holds exactly what the records say, and nothing is left reserved.
    let recorded: i64 = all.iter().filter_map(|r| r["cost_nanos"].as_i64()).sum();
    let spent = poll(Duration::from_secs(60), || async {
        let list = gw.app.get_value("/api/v1/budgets", Some(&gw.token)).await;
        let view = list["data"].as_array()?.iter().find(|b| b["scope"]["kind"] == "workspace")?.clone();
        (view["reserved_usd"].as_f64() == Some(0.0))
            .then(|| (view["spent_usd"].as_f64().unwrap_or(0.0) * 1e9).round() as i64)
    })
    .await
    .expect("every hold settled");
    assert_eq!(spent, recorded, "the budget's spend is the records' sum");
}
