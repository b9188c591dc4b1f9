//! The mock's Amazon Bedrock side: Claude through `InvokeModel` and
//! `InvokeModelWithResponseStream`, and the control plane's `ListFoundationModels`. It checks
//! what Bedrock checks, with its own code rather than AWS's signer: a SigV4 signature recomputed
//! from the request as received (the access key's id, the credential scope's date, region and
//! service `bedrock`, a fresh `x-amz-date`, the session token when the credentials have one,
//! `host` among the signed headers, the body's hash) or a Bedrock API key as a bearer token;
//! an Anthropic model id; `anthropic_version: bedrock-2023-05-31`; no `model` or `stream` in the
//! body. Then Anthropic's own handler answers, and a stream goes out in AWS's event-stream
//! framing (each event base64-wrapped in a `chunk` frame, with both CRC-32s), with one frame's
//! checksum broken on demand.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::MockState;

/// The IAM credentials the mock knows, and the region its provider must sign for.
pub const ACCESS_KEY_ID: &str = "AKIAPERPETUOTEST0001";
pub const SECRET_ACCESS_KEY: &str = "perpetuo/test+SECRET/0001example";
pub const REGION: &str = "eu-west-3";
/// The header the mock's own routes hand a verified call over with (stripped from what arrives).
pub const VERIFIED: &str = "x-mock-bedrock-verified";
/// A model id whose stream has its third frame's checksum broken.
pub const CORRUPT_MODEL: &str = "anthropic.claude-corrupt-stream-v1:0";

/// What the mock's Bedrock side holds.
#[derive(Default)]
pub struct BedrockState {
    /// The session token the credentials carry (temporary credentials), when set.
    pub session_token: Option<String>,
    /// Model calls: the model id, the headers and the body Bedrock received.
    pub calls: Vec<(String, HeaderMap, Value)>,
}

pub fn routes() -> axum::Router<MockState> {
    use axum::routing::{get, post};
    axum::Router::new().route("/model/{model}/{action}", post(invoke)).route("/foundation-models", get(catalogue))
}

/// The credentials as a Bedrock provider's key field takes them.
pub fn access_key_json(session_token: Option<&str>) -> String {
    let mut key = json!({"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY});
    if let Some(token) = session_token {
        key["session_token"] = json!(token);
    }
    key.to_string()
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({"message": message}))).into_response();
    response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_str(kind).unwrap());
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 does it: everything but the unreserved characters.
fn uri_encode(raw: &str, keep_slash: bool) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            b'/' if keep_slash => "/".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a SigV4 signature covers, from a request as it arrived.
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as sent (already percent-encoded once) and the raw query.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The signature of `request` over `signed_headers` at `amz_date`, for a scope
/// (`date/region/service`): SigV4 from its specification.
pub fn signature(
    request: &Signed<'_>,
    signed_headers: &str,
    amz_date: &str,
    scope: (&str, &str, &str),
    secret: &str,
) -> String {
    // Non-S3 services encode the already-encoded path once more.
    let canonical_uri = uri_encode(request.path, true);
    let mut query: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(k, false), uri_encode(v, false))
        })
        .collect();
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    let payload = hex(&sha2::Sha256::digest(request.body));
    let canonical = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload}",
        request.method
    );
    let (date, region, service) = scope;
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&sha2::Sha256::digest(canonical.as_bytes()))
    );
    let key = [date, region, service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac(&key, part.as_bytes()));
    hex(&hmac(&key, to_sign.as_bytes()))
}

/// Bedrock's check of a request's credentials: the bearer API key, or a SigV4 signature.
#[allow(clippy::result_large_err, reason = "a test mock; the error is the response to send")]
fn authenticate(
    state: &MockState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Response> {
    let s = state.1.lock().unwrap();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(key) = auth.strip_prefix("Bearer ") {
        return if key == s.key {
            Ok(())
        } else {
            Err(aws_error(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                "Authentication failed: the API key is invalid.",
            ))
        };
    }
    verify_sigv4(method, uri, headers, body, s.bedrock.session_token.as_deref())
}

/// AWS's check of a SigV4-signed request: the known access key, a credential scoped to this
/// region and `bedrock` on the request's date, made within five minutes, `host` and the date
/// signed, the session token when the credentials have one, and the signature recomputed.
#[allow(clippy::result_large_err, reason = "a test mock; the error is the response to send")]
pub fn verify_sigv4(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    session_token: Option<&str>,
) -> Result<(), Response> {
    let denied = |message: &str| Err(aws_error(StatusCode::FORBIDDEN, "AccessDeniedException", message));
    let invalid_token = || {
        Err(aws_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ))
    };
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(fields) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return denied("Missing Authentication Token");
    };
    let field = |name: &str| {
        fields.split(',').map(str::trim).find_map(|f| f.strip_prefix(name).and_then(|f| f.strip_prefix('=')))
    };
    let (Some(credential), Some(signed_headers), Some(given)) =
        (field("Credential"), field("SignedHeaders"), field("Signature"))
    else {
        return denied("Authorization header requires Credential, SignedHeaders and Signature.");
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if parts.len() != 5 || parts[0] != ACCESS_KEY_ID || parts[4] != "aws4_request" {
        return invalid_token();
    }
    if parts[2] != REGION || parts[3] != "bedrock" || amz_date.get(..8) != Some(parts[1]) {
        return denied("Credential should be scoped to a valid region and service bedrock, on the request's date.");
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return denied("host and x-amz-date must be signed.");
    }
    let token = headers.get("x-amz-security-token").and_then(|v| v.to_str().ok());
    if token != session_token || (token.is_some() && !signed.contains(&"x-amz-security-token")) {
        return invalid_token();
    }
    let now = SystemTime::now();
    let fresh = time_of(amz_date)
        .is_some_and(|t| t.duration_since(now).unwrap_or_else(|e| e.duration()) <= Duration::from_secs(300));
    if !fresh {
        return denied("Signature expired: the request's x-amz-date is more than five minutes from now.");
    }
    let request =
        Signed { method: method.as_str(), path: uri.path(), query: uri.query().unwrap_or_default(), headers, body };
    let expected = signature(&request, signed_headers, amz_date, (parts[1], REGION, "bedrock"), SECRET_ACCESS_KEY);
    if expected != given {
        return denied(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        );
    }
    Ok(())
}

/// Bedrock's checks of an InvokeModel body for Claude; the refusal when it fails them.
pub fn refuse_body(model: &str, request: &Value) -> Option<Response> {
    if !model.contains("anthropic.claude-") {
        return Some(aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The provided model identifier is invalid.",
        ));
    }
    let refusal = if request["anthropic_version"] != "bedrock-2023-05-31" {
        Some("Malformed input request: #: required key [anthropic_version] not found".to_owned())
    } else if let Some(key) = ["model", "stream"].into_iter().find(|k| request.get(*k).is_some()) {
        Some(format!("Malformed input request: #: extraneous key [{key}] is not permitted"))
    } else if request
        .get("anthropic_beta")
        .is_some_and(|b| !b.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        Some("Malformed input request: #/anthropic_beta: expected type: JSONArray".to_owned())
    } else {
        None
    };
    refusal.map(|message| aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message))
}

/// `20150830T123600Z` as a time.
fn time_of(amz: &str) -> Option<SystemTime> {
    let n = |range: std::ops::Range<usize>| amz.get(range)?.parse::<u64>().ok();
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm), for years after 1970.
    let (y, mo) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * mo + 2) / 5 + d - 1 - 719_468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + s))
}

async fn invoke(
    state: State<MockState>,
    Path((model, action)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    headers.remove(VERIFIED);
    if state.0.0 != super::Flavor::Bedrock {
        return aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Not found");
    }
    if let Err(denied) = authenticate(&state.0, &method, &uri, &headers, &body) {
        return denied;
    }
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.0.1.lock().unwrap().bedrock.calls.push((model.clone(), headers.clone(), request.clone()));
    let stream = match action.as_str() {
        "invoke" => false,
        "invoke-with-response-stream" => true,
        "converse" => return converse(&state.0, &model, &request, false),
        "converse-stream" => return converse(&state.0, &model, &request, true),
        _ => return aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation"),
    };
    if let Some(refused) = refuse_body(&model, &request) {
        return refused;
    }
    // Anthropic's own handler answers, as the model behind Bedrock does.
    request["model"] = json!(model);
    request["stream"] = json!(stream);
    let mut inner = headers.clone();
    inner.insert(VERIFIED, HeaderValue::from_static("1"));
    let answer = super::messages(state, inner, Bytes::from(request.to_string())).await;
    if !stream || !answer.status().is_success() {
        return answer;
    }
    event_stream(answer, model == CORRUPT_MODEL)
}

/// An Anthropic stream answer sent on as Bedrock sends it: each event in a `chunk` frame (the
/// third with its checksum broken when `corrupt`).
pub fn event_stream(answer: Response, corrupt: bool) -> Response {
    let mut pending = String::new();
    let mut sent = 0usize;
    let frames = answer.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        pending.push_str(&String::from_utf8_lossy(&chunk));
        let mut out = Vec::new();
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            // An error event is Bedrock's exception frame.
            if event.lines().any(|l| l == "event: error") {
                let message = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|e| e["error"]["message"].as_str().map(str::to_owned));
                let headers = [
                    (":message-type", "exception"),
                    (":exception-type", "modelStreamErrorException"),
                    (":content-type", "application/json"),
                ];
                out.extend(frame(&headers, json!({"message": message.unwrap_or_default()}).to_string().as_bytes()));
                continue;
            }
            let mut frame = chunk_frame(data.as_bytes());
            sent += 1;
            if corrupt && sent == 3 {
                let last = frame.len() - 1;
                frame[last] ^= 0x5a;
            }
            out.extend(frame);
        }
        Ok::<_, std::io::Error>(Bytes::from(out))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-requestid", "8f6c1a2b-0000-4000-8000-mock")
        .body(Body::from_stream(frames))
        .unwrap()
}

/// The Converse API's checks of a body: turns that alternate from the user's, each block one
/// kind, no empty text, a positive `maxTokens`, tool results answering earlier tool uses, and a
/// `toolConfig` when the conversation uses tools.
fn refuse_converse(request: &Value) -> Result<(), String> {
    let turns = request["messages"].as_array().filter(|t| !t.is_empty()).ok_or("messages must be a non-empty list.")?;
    let mut uses = Vec::new();
    let mut expected = "user";
    let mut tooled = false;
    for turn in turns {
        if turn["role"] != expected {
            return Err("A conversation must alternate between user and assistant roles.".into());
        }
        expected = if expected == "user" { "assistant" } else { "user" };
        for block in turn["content"].as_array().ok_or("content must be a list of blocks.")? {
            let keys: Vec<&String> = block.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            if keys.len() != 1 {
                return Err("A content block must set exactly one member.".into());
            }
            match keys[0].as_str() {
                "text" if block["text"].as_str().is_none_or(str::is_empty) => {
                    return Err("The text field in the ContentBlock object is blank.".into());
                }
                "toolUse" => {
                    tooled = true;
                    uses.push(block["toolUse"]["toolUseId"].as_str().unwrap_or_default().to_owned());
                }
                "toolResult" => {
                    tooled = true;
                    if !uses.iter().any(|u| block["toolResult"]["toolUseId"] == u.as_str()) {
                        return Err("The toolResult blocks must answer toolUse blocks of the previous turn.".into());
                    }
                }
                "text" | "image" | "document" => {}
                other => return Err(format!("Unknown content block member {other}.")),
            }
        }
    }
    if request["inferenceConfig"]["maxTokens"].as_u64().is_none_or(|n| n == 0) {
        return Err("inferenceConfig.maxTokens must be at least 1.".into());
    }
    if tooled && request["toolConfig"]["tools"].as_array().is_none_or(Vec::is_empty) {
        return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into());
    }
    Ok(())
}

/// A Converse answer: a tool use when tools are offered and the last turn is not their result,
/// else text; whole, or as a ConverseStream in event-stream frames.
fn converse(state: &MockState, model: &str, request: &Value, stream: bool) -> Response {
    match refuse_converse(request) {
        Ok(()) => converse_answer(state, model, request, stream),
        Err(message) => aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message),
    }
}

fn converse_answer(state: &MockState, _model: &str, request: &Value, stream: bool) -> Response {
    let (prompt, completion) = {
        let s = state.1.lock().unwrap();
        (s.prompt_tokens, s.completion_tokens)
    };
    let last = request["messages"].as_array().and_then(|t| t.last()).cloned().unwrap_or(Value::Null);
    let answered = last["content"].as_array().is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    let tool = request["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str().filter(|_| !answered);
    let usage = json!({"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion});
    // A forced tool (`toolChoice` `tool` or `any`) is called straight away, with no text first.
    let forced = tool.is_some()
        && (request["toolConfig"]["toolChoice"].get("tool").is_some()
            || request["toolConfig"]["toolChoice"].get("any").is_some());
    if !stream {
        let content = match tool {
            Some(name) if forced => {
                json!([{"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": {"city": "Paris"}}}])
            }
            Some(name) => {
                json!([{"text": "Let me check."}, {"toolUse": {"toolUseId": "tooluse_1", "name": name, "input": {"city": "Paris"}}}])
            }
            None => json!([{"text": "Hello from Nova"}]),
        };
        return axum::Json(json!({"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": if tool.is_some() { "tool_use" } else { "end_turn" }, "usage": usage, "metrics": {"latencyMs": 12}}))
        .into_response();
    }
    let event = |name: &str, payload: Value| {
        frame(
            &[(":event-type", name), (":content-type", "application/json"), (":message-type", "event")],
            payload.to_string().as_bytes(),
        )
    };
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    if !forced {
        for (i, word) in ["Hello", " from", " Nova"].iter().enumerate() {
            frames.push(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": word}, "p": "abc"[..i].to_owned()}),
            ));
        }
        frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    }
    if let Some(name) = tool {
        frames.push(event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": name}}}),
        ));
        frames.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ));
        frames.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ));
        frames.push(event("contentBlockStop", json!({"contentBlockIndex": 1})));
    }
    frames.push(event("messageStop", json!({"stopReason": if tool.is_some() { "tool_use" } else { "end_turn" }})));
    frames.push(event("metadata", json!({"usage": usage, "metrics": {"latencyMs": 12}})));
    let chunks = frames.into_iter().map(|f| Ok::<_, std::io::Error>(Bytes::from(f)));
    Response::builder()
        .status(200)
        .header("content-type", "application/vnd.amazon.eventstream")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap()
}

/// One `chunk` event frame carrying an Anthropic event.
pub fn chunk_frame(event_json: &[u8]) -> Vec<u8> {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event_json);
    let payload = json!({"bytes": bytes, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"}).to_string();
    frame(
        &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

/// An event-stream frame: `total | headers length | prelude CRC | headers | payload | CRC`,
/// string headers only, big-endian, IEEE CRC-32.
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.push(u8::try_from(name.len()).unwrap());
        encoded.extend_from_slice(name.as_bytes());
        encoded.push(7);
        encoded.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        encoded.extend_from_slice(value.as_bytes());
    }
    let total = u32::try_from(16 + encoded.len() + payload.len()).unwrap();
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&u32::try_from(encoded.len()).unwrap().to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

async fn catalogue(State(state): State<MockState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if state.0 != super::Flavor::Bedrock {
        return aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Not found");
    }
    if let Err(denied) = authenticate(&state, &method, &uri, &headers, b"") {
        return denied;
    }
    axum::Json(json!({"modelSummaries": [
        {"modelId": "anthropic.claude-3-5-haiku-20241022-v1:0", "providerName": "Anthropic"},
        {"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", "providerName": "Anthropic"}]}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(method: &str, headers: &[(&str, &str)], signed: &str, secret: &str) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let request = Signed { method, path: "/", query: "", headers: &map, body: b"" };
        signature(&request, signed, "20150830T123600Z", ("20150830", "us-east-1", "service"), secret)
    }

    /// AWS's published SigV4 test suite (post-vanilla, get-vanilla-with-session-token): the mock's
    /// own verifier computes the signatures AWS lists.
    #[test]
    fn the_mock_verifier_passes_aws_test_vectors() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let base = [("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")];
        assert_eq!(
            vector("POST", &base, "host;x-amz-date", secret),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let with_token = [base[0], base[1], ("x-amz-security-token", token)];
        assert_eq!(
            vector("GET", &with_token, "host;x-amz-date;x-amz-security-token", secret),
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
        assert_ne!(
            vector("POST", &base, "host;x-amz-date", "another-secret"),
            vector("POST", &base, "host;x-amz-date", secret)
        );
        // double-encode-path: the encoded path is encoded once more.
        assert_eq!(
            uri_encode("/test/@connections/JBDvjfGEIAMCERw%3D", true),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(time_of("20150830T123600Z"), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)));
    }
}
