//! Whatever the client does, the money holds and nothing is held for ever: a client that reads a
//! little and stalls, one that leaves before its answer (whole, or a stream before its first
//! byte), one that leaves while its call waits for a place, streams nobody reads under an
//! in-flight limit, and a flood of connections that never finish their headers. The provider here
//! is the metered one: it bills every token it writes, and writes as fast as its socket allows.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;
use crate::metered::{Metered, Plan};

/// Dollars per million tokens at the metered provider: input 1, output 2.
const IN_NANOS: i64 = 1_000;
const OUT_NANOS: i64 = 2_000;

/// A gateway in front of the metered provider (OpenAI-style and Anthropic), its models priced,
/// under a workspace budget in dollars; clients get `write_timeout` to take what they asked for.
async fn metered_gateway(write_timeout: Duration) -> (Gateway, Metered) {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    options.settings.clients.write_timeout = write_timeout;
    options.settings.upstream.total_timeout = Duration::from_secs(60);
    let gw = Gateway::start(options).await;
    let upstream = Metered::start().await;
    gw.provider("OpenAI", "openai", &upstream.base_url(false), 1).await;
    gw.provider("Anthropic", "anthropic", &upstream.base_url(true), 2).await;
    for (kind, model) in [("openai", "gpt-metered"), ("anthropic", "claude-metered")] {
        let price = json!({"kind": kind, "model": model, "input_per_million": 1.0, "output_per_million": 2.0});
        assert_eq!(gw.app.post_json("/api/v1/prices", Some(&gw.token), &price).await.status(), 200);
    }
    let budget = json!({"usd_limit": 100.0});
    let set = gw.app.client.put(gw.app.url("/api/v1/budgets/workspace")).bearer_auth(&gw.token).json(&budget);
    assert_eq!(set.send().await.unwrap().status(), 200);
    (gw, upstream)
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Chat,
    Messages,
    Responses,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Messages => "/v1/messages",
            Self::Responses => "/v1/responses",
        }
    }

    fn body(self, tag: &str, model: &str, max: u64, stream: bool) -> Value {
        let prompt = format!("[call:{tag}] Write a very long story about the sea.");
        match self {
            Self::Chat => json!({"model": model, "stream": stream, "max_tokens": max,
                                 "messages": [{"role": "user", "content": prompt}]}),
            Self::Messages => json!({"model": model, "stream": stream, "max_tokens": max,
                                     "messages": [{"role": "user", "content": prompt}]}),
            Self::Responses => json!({"model": model, "stream": stream, "max_output_tokens": max, "input": prompt}),
        }
    }
}

/// A client on a raw socket with a small receive buffer: sends the call, reads about `read`
/// bytes of the answer, then stops reading (the socket stays open) and returns it with the
/// request id.
async fn stalled_client(gw: &Gateway, route: Route, body: &Value, read: usize) -> (tokio::net::TcpStream, String) {
    let addr: std::net::SocketAddr = gw.app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\nanthropic-version: 2023-06-01\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        route.path(),
        gw.key,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 512];
    while got.len() < read {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await.unwrap().unwrap();
        assert!(n > 0, "the answer ended early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no request id in {head}"));
    (stream, id)
}

/// The record of a request id, once it is in the ledger.
async fn record_of(gw: &Gateway, id: &str) -> Value {
    let found = poll(Duration::from_secs(60), || async {
        ledger_records(&gw.app.state.db, &gw.workspace).await.into_iter().find(|r| r["request_id"] == id)
    })
    .await;
    found.unwrap_or_else(|| panic!("no record for {id}"))
}

/// The workspace budget's (spent, reserved) in billionths of a dollar, once nothing is reserved.
async fn settled_budget(gw: &Gateway) -> i64 {
    let spent = poll(Duration::from_secs(30), || async {
        let list = gw.app.get_value("/api/v1/budgets", Some(&gw.token)).await;
        let view = list["data"].as_array()?.iter().find(|b| b["scope"]["kind"] == "workspace")?.clone();
        (view["reserved_usd"].as_f64() == Some(0.0))
            .then(|| (view["spent_usd"].as_f64().unwrap_or(0.0) * 1e9).round() as i64)
    })
    .await;
    spent.expect("every hold settled")
}

fn nanos_of(bill: crate::metered::Bill) -> i64 {
    bill.prompt as i64 * IN_NANOS + bill.output as i64 * OUT_NANOS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_a_little_and_stalls_is_charged_what_the_provider_billed() {
    let (gw, upstream) = metered_gateway(Duration::from_millis(300)).await;
    // Long answers the provider writes as fast as it can (nothing bounds them but `max_tokens`).
    let flood = Plan { length: 60_000, gap: Duration::ZERO, ..Plan::default() };
    let cases = [
        (Route::Chat, "openai/gpt-metered", "chat, passed through"),
        (Route::Messages, "anthropic/claude-metered", "messages, passed through"),
        (Route::Responses, "openai/gpt-metered", "responses, passed through"),
        (Route::Chat, "anthropic/claude-metered", "chat to Anthropic, translated"),
        (Route::Messages, "openai/gpt-metered", "messages to OpenAI, translated"),
    ];
    let mut total = 0;
    for (i, (route, model, what)) in cases.into_iter().enumerate() {
        let tag = format!("stall{i}");
        upstream.plan(&tag, flood);
        let open_before = gw.app.state.metrics.open_connections();
        let (socket, id) = stalled_client(&gw, route, &route.body(&tag, model, 60_000, true), 2048).await;
        // The client reads nothing more; the record comes anyway, with the provider's own usage.
        let record = record_of(&gw, &id).await;
        let bill = upstream.bill(&tag);
        assert_eq!(bill.output, 60_000, "{what}: the provider wrote the whole answer");
        let tokens = (record["prompt_tokens"].as_u64().unwrap(), record["completion_tokens"].as_u64().unwrap());
        assert_eq!(tokens, (bill.prompt, bill.output), "{what}: recorded what the provider billed: {record}");
        assert_ne!(record["estimated"], true, "{what}: the provider's own usage: {record}");
        assert_eq!(record["cost_nanos"].as_i64(), Some(nanos_of(bill)), "{what}: {record}");
        assert!(record["cost_nanos"].as_i64() <= record["reserved_nanos"].as_i64(), "{what}: {record}");
        assert_eq!(
            (record["status"].as_i64(), record["error_class"].as_str()),
            (Some(499), Some("client_disconnected"))
        );
        total += nanos_of(bill);
        // The server closed the connection of the client that stopped reading (within the write
        // timeout), while the client still holds its end and has read nothing more.
        let closed = poll(Duration::from_secs(20), || async {
            (gw.app.state.metrics.open_connections() < open_before + 1).then_some(())
        })
        .await;
        assert!(closed.is_some(), "{what}: the stalled client's connection was closed");
        drop(socket);
    }
    assert_eq!(settled_budget(&gw).await, total, "the budget was charged exactly what the provider billed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_its_answer_leaves_a_record_of_what_was_billed() {
    let (gw, upstream) = metered_gateway(Duration::from_secs(5)).await;
    // The provider takes a second before it answers; the client gives up after 300 ms.
    let slow = Plan { length: 200, first_delay: Duration::from_millis(1000), ..Plan::default() };
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let mut total = 0;
    for (i, (route, model, stream)) in [
        (Route::Chat, "openai/gpt-metered", false),
        (Route::Messages, "anthropic/claude-metered", false),
        (Route::Responses, "openai/gpt-metered", false),
        (Route::Chat, "anthropic/claude-metered", false),
        (Route::Chat, "openai/gpt-metered", true),
        (Route::Messages, "anthropic/claude-metered", true),
    ]
    .into_iter()
    .enumerate()
    {
        let tag = format!("gone{i}");
        upstream.plan(&tag, slow);
        let sent = impatient
            .post(gw.app.url(route.path()))
            .bearer_auth(&gw.key)
            .header("anthropic-version", "2023-06-01")
            .json(&route.body(&tag, model, 200, stream))
            .send()
            .await;
        assert!(sent.is_err(), "the client gave up before the answer");
        // The call goes on without it: one record, at what the provider billed.
        let record = poll(Duration::from_secs(30), || async {
            let rows = ledger_records(&gw.app.state.db, &gw.workspace).await;
            let tagged: Vec<Value> = rows.into_iter().filter(|r| r["status"] == 499).collect();
            (tagged.len() > i).then(|| tagged[i].clone())
        })
        .await
        .unwrap_or_else(|| panic!("{tag}: a record"));
        let bill = upstream.bill(&tag);
        assert_eq!(bill.requests, 1, "{tag}");
        assert_eq!(record["error_class"], "client_disconnected", "{tag}: {record}");
        let tokens = (record["prompt_tokens"].as_u64().unwrap(), record["completion_tokens"].as_u64().unwrap());
        assert_eq!(tokens, (bill.prompt, bill.output), "{tag}: {record}");
        assert_ne!(record["estimated"], true, "{tag}: the provider's own usage: {record}");
        total += nanos_of(bill);
    }
    let rows = ledger_records(&gw.app.state.db, &gw.workspace).await;
    assert_eq!(rows.len(), 6, "exactly one record a call");
    assert_eq!(settled_budget(&gw).await, total, "no hold stranded; the budget holds what was billed");
}

#[tokio::test]
async fn a_client_that_leaves_while_its_call_waits_for_a_place_is_recorded_and_holds_nothing() {
    let (gw, upstream) = metered_gateway(Duration::from_secs(5)).await;
    let put =
        |body: Value| gw.app.client.put(gw.app.url("/api/v1/limits/workspace")).bearer_auth(&gw.token).json(&body);
    assert_eq!(put(json!({"max_in_flight": 1})).send().await.unwrap().status(), 200);
    // One call holds the only place for two seconds.
    upstream.plan("holder", Plan { length: 20, first_delay: Duration::from_millis(2000), ..Plan::default() });
    let holder_body = Route::Chat.body("holder", "openai/gpt-metered", 20, false);
    let holder = gw.chat(&holder_body);
    let waiter = async {
        // Once the holder has the place.
        let held = poll(Duration::from_secs(10), || async {
            let limits = gw.app.get_value("/api/v1/limits", Some(&gw.token)).await;
            (limits["data"][0]["in_flight_here"] == 1).then_some(())
        })
        .await;
        assert!(held.is_some(), "the first call holds the place");
        let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        let body = Route::Chat.body("waiter", "openai/gpt-metered", 20, false);
        impatient.post(gw.app.url("/v1/chat/completions")).bearer_auth(&gw.key).json(&body).send().await
    };
    let (held, waited) = tokio::join!(holder, waiter);
    assert_eq!(held.status(), 200);
    assert!(waited.is_err(), "the waiting client gave up");
    let rows = gw.usage(2).await;
    let gone: Vec<&Value> = rows.iter().filter(|r| r["status"] == 499).collect();
    assert_eq!(gone.len(), 1, "{rows:?}");
    assert_eq!(gone[0]["error_class"], "client_disconnected");
    assert_eq!(gone[0]["cost_nanos"].as_i64().unwrap_or(0), 0, "nothing was sent, nothing charged");
    assert_eq!(upstream.bill("waiter").requests, 0, "the provider never saw the call whose client left");
    assert_eq!(settled_budget(&gw).await, nanos_of(upstream.bill("holder")));
    // The place came back: another call goes through.
    assert_eq!(gw.chat(&Route::Chat.body("after", "openai/gpt-metered", 5, false)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_nobody_reads_give_back_their_places_by_the_deadline() {
    let mut options = Options::default();
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    options.settings.upstream.total_timeout = Duration::from_secs(3);
    options.settings.limit_wait = Duration::from_secs(20);
    // Long enough that the deadline, not the client's timeout, ends the streams.
    options.settings.clients.write_timeout = Duration::from_secs(60);
    let gw = Gateway::start(options).await;
    let upstream = Metered::start().await;
    gw.provider("OpenAI", "openai", &upstream.base_url(false), 1).await;
    let put =
        |body: Value| gw.app.client.put(gw.app.url("/api/v1/limits/workspace")).bearer_auth(&gw.token).json(&body);
    assert_eq!(put(json!({"max_in_flight": 2})).send().await.unwrap().status(), 200);
    // Streams that would go on for minutes, one token every 50 ms.
    let endless = Plan { length: 10_000, gap: Duration::from_millis(50), ..Plan::default() };
    let mut stalled = Vec::new();
    for i in 0..2 {
        let tag = format!("unread{i}");
        upstream.plan(&tag, endless);
        stalled.push(
            stalled_client(&gw, Route::Chat, &Route::Chat.body(&tag, "openai/gpt-metered", 10_000, true), 256).await,
        );
    }
    // Another key's call waits for a place (up to 20 s) and gets one when the deadline ends them.
    let (_, other) = gw.app.add_key(&gw.token, "other").await;
    let started = std::time::Instant::now();
    let response = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&other)
        .json(&Route::Chat.body("other", "openai/gpt-metered", 5, false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    eprintln!("the third call was admitted after {:?}", started.elapsed());
    for (_, id) in &stalled {
        let record = record_of(&gw, id).await;
        assert_eq!(
            (record["status"].as_i64(), record["error_class"].as_str()),
            (Some(502), Some("deadline")),
            "{record}"
        );
        // Cut at the deadline: at least what the provider wrote by then.
        let tag = format!("unread{}", stalled.iter().position(|(_, i)| i == id).unwrap());
        let bill = upstream.bill(&tag);
        assert!(record["completion_tokens"].as_u64().unwrap() >= bill.output, "{record} vs {bill:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed_while_calls_go_on() {
    let mut options = Options::default();
    options.settings.clients.read_timeout = Duration::from_millis(1000);
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(100_000).unwrap();
    let (gw, _upstream) = {
        let gw = Gateway::start(options).await;
        let upstream = Metered::start().await;
        gw.provider("OpenAI", "openai", &upstream.base_url(false), 1).await;
        (gw, upstream)
    };
    let addr: std::net::SocketAddr = gw.app.base.trim_start_matches("http://").parse().unwrap();
    // 200 connections, each sending a header byte every 300 ms and never finishing.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..200 {
        slow.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let opened = std::time::Instant::now();
            let mut buffer = [0u8; 256];
            for byte in b"GET /healthz HTTP/1.1\r\nx-slow: ".iter().chain(std::iter::repeat(&b'a')) {
                if stream.write_all(&[*byte]).await.is_err() {
                    return opened.elapsed();
                }
                match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await {
                    Ok(Ok(0) | Err(_)) => return opened.elapsed(),
                    // The server answered (a 408, say) before it closed: keep reading to the end.
                    Ok(Ok(_)) => {}
                    Err(_) => {}
                }
                if opened.elapsed() > Duration::from_secs(30) {
                    break;
                }
            }
            opened.elapsed()
        });
    }
    // Ordinary calls keep answering meanwhile.
    for i in 0..10 {
        let response = gw.chat(&Route::Chat.body(&format!("ordinary{i}"), "openai/gpt-metered", 5, false)).await;
        assert_eq!(response.status(), 200);
    }
    let mut longest = Duration::ZERO;
    while let Some(open_for) = slow.join_next().await {
        longest = longest.max(open_for.unwrap());
    }
    assert!(longest < Duration::from_secs(10), "every slow connection was closed (the longest was open {longest:?})");
    eprintln!("200 slow-header connections: the longest stayed open {longest:?} (read timeout 1 s)");
}

#[tokio::test]
async fn connections_beyond_the_per_address_bound_are_refused_and_come_back() {
    let mut options = Options::default();
    options.settings.clients.max_connections_per_ip = 20;
    let gw = Gateway::start(options).await;
    let addr: std::net::SocketAddr = gw.app.base.trim_start_matches("http://").parse().unwrap();
    // The test's own client may keep a connection or two in its pool: it has none open now.
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Those past the bound are closed at once by the server: a read sees the end.
    let mut refused = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await {
            refused += 1;
        }
    }
    assert!(refused >= 10, "at least the 10 past the bound of 20 were closed ({refused})");
    drop(held);
    // Once they are closed, the address may connect again.
    let back = poll(Duration::from_secs(5), || async {
        let response = gw.app.client.get(gw.app.url("/healthz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    assert!(back.is_some(), "the address is served again");
}
