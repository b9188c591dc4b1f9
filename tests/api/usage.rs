//! Usage records, costs, the usage API, the request log, CSV, metrics, and durability of the
//! usage queue across a SIGTERM.

use serde_json::{Value, json};

use perpetuo_core::usage::UsageRecord;

use crate::helpers::*;
use crate::mock::{Flavor, Mock, VALID_KEY};

#[allow(clippy::too_many_arguments, reason = "test data, one field per argument")]
fn known_record(
    ws: &str,
    ts: i64,
    model: &str,
    key: &str,
    status: i64,
    prompt: i64,
    completion: i64,
    cost: Option<i64>,
) -> UsageRecord {
    UsageRecord {
        ts,
        workspace: ws.into(),
        request_id: format!("req_{ts}"),
        key_id: key.into(),
        provider_id: Some("prov1".into()),
        provider_label: Some("Prov".into()),
        provider_kind: Some("openai".into()),
        model: model.into(),
        served_model: None,
        endpoint: "chat".into(),
        stream: false,
        status,
        ok: status == 200,
        error_class: (status != 200).then(|| "upstream_5xx".into()),
        attempts: 1,
        tokens: perpetuo_core::usage::TokenCounts {
            prompt: u64::try_from(prompt).unwrap_or(0),
            completion: u64::try_from(completion).unwrap_or(0),
            ..Default::default()
        },
        cost_nanos: cost,
        latency_ms: 40,
        upstream_ms: 38,
        ttft_ms: None,
        estimated: false,
        abandoned: 0,
        reserved_nanos: None,
        reserved_tokens: None,
        dropped_tools: None,
        timeline: Vec::new(),
        price: None,
    }
}

#[tokio::test]
async fn every_call_is_one_record_with_upstream_tokens_and_the_right_cost() {
    let gw = Gateway::start(Options::default()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    // Kind `openai` at the mock's address, so the price table applies.
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 2).await;
    let calls = [
        ("gpt-4o-mini", false),
        ("gpt-4o-mini", true),
        ("claude-3-5-haiku-20241022", false),
        ("claude-3-5-haiku-20241022", true),
    ];
    let mut n = 0;
    for _ in 0..3 {
        for (model, stream) in calls {
            let mut body = chat_body(model);
            body["stream"] = json!(stream);
            let response = gw.chat(&body).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
            n += 1;
        }
    }
    let records = gw.usage(n).await;
    usage_settled(&gw.app, n as u64).await;
    assert_eq!(gw.app.state.usage.stats.written.load(std::sync::atomic::Ordering::Relaxed), n as u64);
    assert_eq!(gw.usage(n).await.len(), n, "exactly one record per call");
    for r in &records {
        assert_eq!((r["prompt_tokens"].as_i64(), r["completion_tokens"].as_i64()), (Some(11), Some(7)), "{r}");
        let expected =
            if r["model"].as_str().unwrap().starts_with("gpt") { 11 * 150 + 7 * 600 } else { 11 * 800 + 7 * 4000 };
        assert_eq!(r["cost_nanos"].as_i64(), Some(expected), "{r}");
    }
    assert_eq!(records.iter().filter(|r| r["stream"] == true).count(), n / 2);

    // The API's totals agree.
    let totals: Value = gw.app.get_value("/api/v1/usage", Some(&gw.token)).await;
    assert_eq!(totals["requests"], n);
    assert_eq!(totals["prompt_tokens"], 11 * n);
    assert_eq!(totals["cost_nanos"], 6 * (11 * 150 + 7 * 600) + 6 * (11 * 800 + 7 * 4000));
    assert!(totals["latency_p50_ms"].is_i64());
    assert!(totals["ttft_p50_ms"].is_i64(), "streams give a time to first token");
}

#[tokio::test]
async fn prompt_cache_tokens_are_recorded_and_priced_at_cache_rates() {
    let gw = Gateway::start(Options::default()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    let anthropic = Mock::start(Flavor::Anthropic).await;
    openai.set_cache(6, 0);
    anthropic.set_cache(100, 20);
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    gw.provider("Claude", "anthropic", &anthropic.base_url(), 2).await;
    let response = gw.chat(&chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 200);
    let body: Value = gw.chat(&chat_body("claude-3-5-haiku")).await.json().await.unwrap();
    assert_eq!(body["usage"]["prompt_tokens"], 131, "cached input is still input");
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    let records = gw.usage(2).await;
    let gpt = records.iter().find(|r| r["model"] == "gpt-4o-mini").unwrap();
    assert_eq!((gpt["prompt_tokens"].as_i64(), gpt["cache_read_tokens"].as_i64()), (Some(11), Some(6)));
    // 5 uncached x $0.15 + 6 cached x $0.075 + 7 out x $0.60 per million.
    assert_eq!(gpt["cost_nanos"], 5 * 150 + 6 * 75 + 7 * 600);
    let claude = records.iter().find(|r| r["model"] == "claude-3-5-haiku").unwrap();
    assert_eq!((claude["cache_read_tokens"].as_i64(), claude["cache_write_tokens"].as_i64()), (Some(100), Some(20)));
    // 11 uncached x $0.80 + 100 read x $0.08 + 20 written x $1.00 + 7 out x $4.00 per million.
    assert_eq!(claude["cost_nanos"], 11 * 800 + 100 * 80 + 20 * 1000 + 7 * 4000);
    assert_eq!((gpt["reasoning_tokens"].as_i64(), claude["reasoning_tokens"].as_i64()), (Some(2), Some(0)));

    // The totals, the request log and the CSV show cached and reasoning tokens.
    usage_settled(&gw.app, 2).await;
    let totals: Value = gw.app.get_value("/api/v1/usage", Some(&gw.token)).await;
    assert_eq!(
        (
            totals["cache_read_tokens"].as_i64(),
            totals["cache_write_tokens"].as_i64(),
            totals["reasoning_tokens"].as_i64()
        ),
        (Some(106), Some(20), Some(2))
    );
    let log: Value = gw.app.get_value("/api/v1/requests", Some(&gw.token)).await;
    let rows = log["data"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["cache_read_tokens"] == 100 && r["cache_write_tokens"] == 20), "{log}");
    assert!(rows.iter().any(|r| r["reasoning_tokens"] == 2), "{log}");
    let client = new_client();
    let response = gw
        .app
        .post_form(&client, "/fn/sign_in", "/signin", &[("email", &gw.owner_email), ("password", PASSWORD)])
        .await;
    assert_eq!(location(&response), "/providers");
    let csv = client.get(gw.app.url("/usage/export.csv")).send().await.unwrap().text().await.unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap_or_default().split(',').collect();
    let column =
        |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} column: {csv}"));
    let claude_line: Vec<&str> = csv.lines().find(|l| l.contains("claude-3-5-haiku")).unwrap().split(',').collect();
    assert_eq!((claude_line[column("cache_read_tokens")], claude_line[column("cache_write_tokens")]), ("100", "20"));
    let gpt_line: Vec<&str> = csv.lines().find(|l| l.contains("gpt-4o-mini")).unwrap().split(',').collect();
    assert_eq!(gpt_line[column("reasoning_tokens")], "2");
}

#[tokio::test]
async fn a_workspace_price_overrides_the_table_for_new_requests() {
    let gw = Gateway::start(Options::default()).await;
    let openai = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &openai.base_url(), 1).await;
    gw.chat(&chat_body("gpt-4o-mini")).await;
    let set = gw
        .app
        .post_json(
            "/api/v1/prices",
            Some(&gw.token),
            &json!({"kind": "openai", "model": "gpt-4o-mini", "input_per_million": 1.0, "output_per_million": 2.0}),
        )
        .await;
    assert_eq!(set.status(), 200);
    gw.chat(&chat_body("gpt-4o-mini")).await;
    // A model the table does not know, priced by the workspace.
    gw.app
        .post_json(
            "/api/v1/prices",
            Some(&gw.token),
            &json!({"kind": "openai", "model": "my-finetune", "input_per_million": 10.0, "output_per_million": 10.0}),
        )
        .await;
    assert_eq!(gw.chat(&chat_body("openai/my-finetune")).await.status(), 200);
    assert_eq!(gw.chat(&chat_body("openai/unlisted-model")).await.status(), 200);
    let records = gw.usage(4).await;
    let cost = |model: &str| {
        records.iter().filter(|r| r["model"] == model).map(|r| r["cost_nanos"].as_i64()).collect::<Vec<_>>()
    };
    assert_eq!(cost("gpt-4o-mini"), vec![Some(5850), Some(11 * 1000 + 7 * 2000)]);
    assert_eq!(cost("openai/my-finetune"), vec![Some(18 * 10_000)]);
    assert_eq!(cost("openai/unlisted-model"), vec![None], "unknown stays unknown");
    let list: Value = gw.app.get_value("/api/v1/prices", Some(&gw.token)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let removed = gw
        .app
        .client
        .delete(gw.app.url("/api/v1/prices?kind=openai&model=my-finetune"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
}

#[tokio::test]
async fn aggregation_filters_pagination_csv_and_isolation_on_known_data() {
    let app = spawn_app().await;
    let (token_a, ws_a, _) = app.api_signup(&email("agg-a")).await;
    let (token_b, ws_b, _) = app.api_signup(&email("agg-b")).await;
    let today = perpetuo_types::Period::last_days(1, perpetuo_core::platform::db::now_ms()).from_day;
    let yesterday = today - perpetuo_types::DAY_MS;
    let records = vec![
        known_record(&ws_a, yesterday + 1000, "gpt-4o", "k1", 200, 100, 50, Some(1000)),
        known_record(&ws_a, yesterday + 2000, "gpt-4o", "k2", 502, 0, 0, None),
        known_record(&ws_a, today + 1000, "gpt-4o-mini", "k1", 200, 10, 5, Some(20)),
        known_record(&ws_a, today + 2000, "=cmd|' /C calc'!A0", "k1", 200, 1, 1, None),
        known_record(&ws_a, today + 3000, "gpt-4o", "k1", 429, 0, 0, None),
        known_record(&ws_b, today + 1000, "gpt-4o", "kb", 200, 999, 999, Some(99_999)),
    ];
    perpetuo_core::usage::ledger::insert(&app.state.db, &records, true).await.unwrap();
    let since = perpetuo_types::format_day(yesterday);

    let totals: Value = app.get_value(&format!("/api/v1/usage?from={since}"), Some(&token_a)).await;
    assert_eq!(totals["requests"], 5);
    assert_eq!(totals["errors"], 2);
    assert_eq!(totals["prompt_tokens"], 111);
    assert_eq!(totals["completion_tokens"], 56);
    assert_eq!(totals["cost_nanos"], 1020);
    assert_eq!(totals["unpriced_requests"], 3);
    let by_day: Value = app.get_value(&format!("/api/v1/usage?from={since}&group_by=day"), Some(&token_a)).await;
    let days: Vec<i64> = by_day["data"].as_array().unwrap().iter().map(|g| g["requests"].as_i64().unwrap()).collect();
    assert_eq!(days, vec![2, 3]);
    let by_model: Value = app.get_value(&format!("/api/v1/usage?from={since}&group_by=model"), Some(&token_a)).await;
    assert_eq!(by_model["data"][0]["key"], "gpt-4o");
    assert_eq!(by_model["data"][0]["requests"], 3);
    let only_today: Value = app
        .get_value(&format!("/api/v1/usage?from={0}&to={0}", perpetuo_types::format_day(today)), Some(&token_a))
        .await;
    assert_eq!(only_today["requests"], 3);
    api_error(app.get_json("/api/v1/usage?group_by=weekday", Some(&token_a)).await, 400).await;
    api_error(app.get_json("/api/v1/usage?from=yesterday", Some(&token_a)).await, 400).await;

    // The log: newest first, filters, total, pages.
    let page: Value = app.get_value(&format!("/api/v1/requests?from={since}&limit=2"), Some(&token_a)).await;
    assert_eq!(page["total"], 5);
    let ts: Vec<i64> = page["data"].as_array().unwrap().iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert_eq!(ts, vec![today + 3000, today + 2000]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next: Value =
        app.get_value(&format!("/api/v1/requests?from={since}&limit=2&cursor={cursor}"), Some(&token_a)).await;
    let ts: Vec<i64> = next["data"].as_array().unwrap().iter().map(|r| r["ts"].as_i64().unwrap()).collect();
    assert_eq!(ts, vec![today + 1000, yesterday + 2000]);
    let last: Value = app
        .get_value(
            &format!("/api/v1/requests?from={since}&limit=2&cursor={}", next["next_cursor"].as_str().unwrap()),
            Some(&token_a),
        )
        .await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert!(last["next_cursor"].is_null());
    for (query, total) in [
        ("key=k2", 1),
        ("model=gpt-4o", 3),
        ("status=error", 2),
        ("status=ok", 3),
        ("status=429", 1),
        ("provider=prov1&key=k1", 4),
        ("provider=nope", 0),
    ] {
        let page: Value = app.get_value(&format!("/api/v1/requests?from={since}&{query}"), Some(&token_a)).await;
        assert_eq!(page["total"], total, "{query}");
        assert_eq!(page["data"].as_array().unwrap().len() as i64, total, "{query}");
    }
    api_error(app.get_json("/api/v1/requests?limit=abc", Some(&token_a)).await, 400).await;
    api_error(app.get_json("/api/v1/requests?limit=0", Some(&token_a)).await, 400).await;

    // B sees only B.
    let b: Value = app.get_value(&format!("/api/v1/requests?from={since}"), Some(&token_b)).await;
    assert_eq!(b["total"], 1);
    assert_eq!(b["data"][0]["prompt_tokens"], 999);
    let b_totals: Value = app.get_value(&format!("/api/v1/usage?from={since}"), Some(&token_b)).await;
    assert_eq!(b_totals["requests"], 1);

    // CSV from the dashboard, for the signed-in user's workspace only.
    let client = new_client();
    let a_email = email("agg-csv");
    app.dashboard_signup(&client, &a_email).await;
    let (csv_token, ws_csv, _) = {
        let r: Value = app
            .post_json("/api/v1/auth/token", None, &json!({"email": a_email, "password": PASSWORD}))
            .await
            .json()
            .await
            .unwrap();
        (r["token"].as_str().unwrap().to_owned(), r["workspace"]["id"].as_str().unwrap().to_owned(), ())
    };
    let _ = csv_token;
    let mine: Vec<UsageRecord> = records
        .iter()
        .filter(|r| r.workspace == ws_a)
        .map(|r| UsageRecord { workspace: ws_csv.clone(), request_id: format!("{}c", r.request_id), ..r.clone() })
        .collect();
    perpetuo_core::usage::ledger::insert(&app.state.db, &mine, true).await.unwrap();
    let response = client.get(app.url(&format!("/usage/export.csv?from={since}&status=ok"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 3, "header + the three successful requests:\n{csv}");
    assert!(lines[0].starts_with("time_utc,request_id,key,provider,model"));
    assert!(csv.contains(",'=cmd|' /C calc'!A0,"), "formula neutralised:\n{csv}");
    assert!(!csv.contains("999"), "no other workspace's rows");
    let signed_out = new_client().get(app.url("/usage/export.csv")).send().await.unwrap();
    assert_eq!(location(&signed_out), "/signin");

    // The tab's server function reads only the session's workspace.
    let report: Value = app
        .server_fn_json(&client, "usage_report", &json!({"q": {"from": since, "status": ""}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["summary"]["requests"], 5, "the CSV user's own five");
    assert_eq!(report["log"]["total"], 5);
    assert!(!report.to_string().contains("999"), "nothing of workspace B");
    let stranger = new_client();
    app.dashboard_signup(&stranger, &email("stranger")).await;
    let theirs: Value =
        app.server_fn_json(&stranger, "usage_report", &json!({"q": {"from": since}})).await.json().await.unwrap();
    assert_eq!(theirs["summary"]["requests"], 0);
    assert_eq!(theirs["log"]["data"], json!([]));
}

#[tokio::test]
async fn usage_tab_renders_summary_chart_and_log_without_js() {
    let gw = Gateway::start(Options::default()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &mock.base_url(), 1).await;
    for _ in 0..3 {
        gw.chat(&chat_body("gpt-4o-mini")).await;
    }
    gw.usage(3).await;
    let client = new_client();
    app_signin(&gw, &client).await;
    let page = client.get(gw.app.url("/usage?period=7d&by=model")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-testid=\"usage-summary\""));
    assert!(page.contains("<svg"), "chart drawn on the server");
    assert!(page.contains("gpt-4o-mini"));
    assert!(page.contains("3 matching requests"), "log count shown");
    let filtered = client.get(gw.app.url("/usage?status=error")).send().await.unwrap().text().await.unwrap();
    assert!(filtered.contains("0 matching requests"));
    let bad =
        client.get(gw.app.url("/usage?from=not-a-date&period=custom")).send().await.unwrap().text().await.unwrap();
    assert!(bad.contains("must be a date"), "a readable message");
}

/// Signs `client` in as the gateway workspace's owner.
async fn app_signin(gw: &Gateway, client: &reqwest::Client) {
    let email = gw.owner_email.clone();
    let response =
        gw.app.post_form(client, "/fn/sign_in", "/signin", &[("email", &email), ("password", PASSWORD)]).await;
    assert_eq!(location(&response), "/providers");
}

#[tokio::test]
async fn metrics_parse_and_move() {
    let mut options = Options::default();
    options.settings.metrics_public = true;
    let gw = Gateway::start(options).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &mock.base_url(), 1).await;
    let scrape = || async { gw.app.client.get(gw.app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let before = parse_prometheus(&scrape().await);
    gw.chat(&chat_body("gpt-4o-mini")).await;
    mock.script([crate::mock::Behavior::Status(500, None)]);
    gw.chat(&chat_body("gpt-4o-mini")).await;
    usage_settled(&gw.app, 2).await;
    let text = scrape().await;
    let after = parse_prometheus(&text);
    let get = |m: &std::collections::HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(&after, "perpetuo_requests_total{status=\"200\",provider=\"openai\",model=\"gpt-4o-mini\"}"),
        2.0,
        "{text}"
    );
    assert!(
        get(&after, "perpetuo_request_duration_seconds_count")
            >= get(&before, "perpetuo_request_duration_seconds_count") + 2.0
    );
    assert_eq!(get(&after, "perpetuo_upstream_errors_total{provider=\"openai\",class=\"upstream_5xx\"}"), 1.0);
    assert!(get(&after, "perpetuo_usage_records_written_total") >= 2.0);
    assert!(
        !text.contains(&gw.key) && !text.contains(VALID_KEY) && !text.contains("@example.com"),
        "no secrets or emails in labels"
    );
}

/// Parses Prometheus text exposition strictly: every sample line is `name{labels} number`.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.insert(series.to_owned(), value);
    }
    assert!(!samples.is_empty());
    samples
}

#[tokio::test]
async fn old_request_records_are_pruned_and_rollups_kept() {
    let app = spawn_app().await;
    let (token, ws, _) = app.api_signup(&email("prune")).await;
    let now = perpetuo_core::platform::db::now_ms();
    let old = now - 100 * perpetuo_types::DAY_MS;
    let records = vec![
        known_record(&ws, old, "gpt-4o", "k1", 200, 1, 1, Some(1)),
        known_record(&ws, old + 1, "gpt-4o", "k1", 200, 1, 1, Some(1)),
        known_record(&ws, now - 1000, "gpt-4o", "k1", 200, 1, 1, Some(1)),
    ];
    perpetuo_core::usage::ledger::insert(&app.state.db, &records, true).await.unwrap();
    let removed = app.state.reports().prune(now - 90 * perpetuo_types::DAY_MS).await.unwrap();
    assert_eq!(removed, 2);
    let log: Value =
        app.get_value(&format!("/api/v1/requests?from={}", perpetuo_types::format_day(old)), Some(&token)).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1);
    let totals: Value =
        app.get_value(&format!("/api/v1/usage?from={}", perpetuo_types::format_day(old)), Some(&token)).await;
    assert_eq!(totals["requests"], 3, "daily totals outlive the raw records");
}

/// The usage tab reached by clicking (client-side navigation) asks for its report with every
/// filter unset: the server function must answer that, not 500.
#[tokio::test]
async fn the_usage_report_answers_with_every_filter_unset() {
    let app = spawn_app().await;
    let client = new_client();
    app.dashboard_signup(&client, &email("unset")).await;
    let response = app.server_fn_json(&client, "usage_report", &json!({"q": {}})).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["summary"]["requests"], 0);
    assert_eq!(report["by"], "model", "the default breakdown");
}

/// `perpetuo prices check` lists the models that served requests with no price, and only those.
#[tokio::test]
async fn models_without_a_price_are_listed_for_prices_check() {
    let gw = Gateway::start(Options::default()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("OpenAI", "openai", &mock.base_url(), 1).await;
    for model in ["gpt-4o-mini", "my-fine-tune-x", "my-fine-tune-x"] {
        assert_eq!(gw.chat(&chat_body(&format!("openai/{model}"))).await.status(), 200);
    }
    usage_settled(&gw.app, 3).await;
    let since = perpetuo_core::platform::db::now_ms() - 30 * perpetuo_types::DAY_MS;
    let missing = gw.app.state.prices().unpriced_since(since).await.unwrap();
    let listed: Vec<(String, String, i64)> = missing.into_iter().map(|m| (m.kind, m.model, m.requests)).collect();
    assert_eq!(listed, vec![("openai".to_owned(), "openai/my-fine-tune-x".to_owned(), 2)]);
}
