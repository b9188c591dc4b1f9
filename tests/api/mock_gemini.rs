//! The mock's Gemini API side (`/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key`). It checks what Google's does:
//! `contents` with `user`/`model` roles and parts holding one datum each, every
//! `functionResponse` answering a `functionCall` by name, and (as Gemini 3 does) every function
//! call sent back carrying the `thoughtSignature` it was given. Offered functions and a user turn,
//! it calls the first one; after a function's result, or without tools, it answers in text.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{Behavior, MockState};

/// The signature the mock gives its function calls, and wants back.
pub const SIGNATURE: &str = "c2lnbmF0dXJlLW1vY2s+/w==";

pub fn routes() -> axum::Router<MockState> {
    axum::Router::new()
        .route("/v1beta/models/{action}", axum::routing::post(generate))
        .route("/v1beta/models", axum::routing::get(list))
}

fn google_error(status: u16, message: &str, reason: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (status, axum::Json(json!({"error": {"code": status.as_u16(), "message": message, "status": reason}})))
        .into_response()
}

/// Why Google would refuse the body, if it would.
fn refusal(request: &Value) -> Option<String> {
    let contents = request.get("contents").and_then(Value::as_array)?;
    let mut called: Vec<String> = Vec::new();
    for content in contents {
        let role = content["role"].as_str().unwrap_or_default();
        if role != "user" && role != "model" {
            return Some(format!("Please use a valid role: user, model. Got {role}"));
        }
        for part in content["parts"].as_array().into_iter().flatten() {
            let data = ["text", "inlineData", "fileData", "functionCall", "functionResponse"]
                .iter()
                .filter(|k| part.get(**k).is_some())
                .count();
            if data != 1 {
                return Some("Each part must hold exactly one of text, inlineData, functionCall, ...".into());
            }
            if let Some(call) = part.get("functionCall") {
                if part.get("thoughtSignature").and_then(Value::as_str) != Some(SIGNATURE) {
                    return Some("Function call is missing a thought_signature in functionCall parts.".into());
                }
                called.push(call["name"].as_str().unwrap_or_default().to_owned());
            }
            if let Some(response) = part.get("functionResponse")
                && !called.iter().any(|n| response["name"] == n.as_str())
            {
                return Some("functionResponse does not match any functionCall.".into());
            }
        }
    }
    if !request["generationConfig"]["maxOutputTokens"].is_u64() {
        return Some("generationConfig.maxOutputTokens must be a positive integer".into());
    }
    None
}

async fn generate(
    State(state): State<MockState>,
    Path(action): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.0 != super::Flavor::Gemini {
        return google_error(404, "Not found", "NOT_FOUND");
    }
    generate_as(state, action, query, headers, body).await
}

/// Gemini's checks and answer, for AI Studio and for Vertex AI's Google publisher alike (the
/// caller has checked its own credentials' form; `admit` checks the key or token).
pub async fn generate_as(
    state: MockState,
    action: String,
    query: std::collections::HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (behavior, request, prompt, completion) =
        match super::admit(&state, &format!("/v1beta/models/{action}"), &headers, &body) {
            Err(denied) => return denied,
            Ok(x) => x,
        };
    if let Behavior::Status(code, _) = behavior {
        return google_error(code, &format!("mock says {code}"), "UNAVAILABLE");
    }
    let Some((model, method)) = action.rsplit_once(':') else {
        return google_error(404, "Method not found.", "NOT_FOUND");
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" if query.get("alt").map(String::as_str) == Some("sse") => true,
        _ => return google_error(400, "Unsupported method or missing alt=sse", "INVALID_ARGUMENT"),
    };
    let reason =
        if request.get("contents").is_some() { refusal(&request) } else { Some("contents is required".into()) };
    match reason {
        Some(reason) => google_error(400, &reason, "INVALID_ARGUMENT"),
        None => answer(&request, model, stream, prompt, completion),
    }
}

fn answer(request: &Value, model: &str, stream: bool, prompt: u64, completion: u64) -> Response {
    let last_is_result = request["contents"]
        .as_array()
        .and_then(|c| c.last())
        .is_some_and(|c| c["parts"].as_array().into_iter().flatten().any(|p| p.get("functionResponse").is_some()));
    let first_tool = request["tools"][0]["functionDeclarations"][0]["name"].as_str().filter(|_| !last_is_result);
    let usage =
        json!({"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion});
    let finish = |parts: Value| {
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage, "modelVersion": model, "responseId": "gem-mock-1"})
    };
    let parts = match first_tool {
        Some(name) => {
            json!([{"functionCall": {"name": name, "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE}])
        }
        None => json!([{"text": "Hello from Gemini"}]),
    };
    if !stream {
        return axum::Json(finish(parts)).into_response();
    }
    let start = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt}, "modelVersion": model});
    let last = match first_tool {
        Some(_) => finish(parts),
        None => finish(json!([{"text": " from Gemini"}])),
    };
    let events = [start, last].iter().map(|e| format!("data: {e}\r\n\r\n")).collect::<Vec<_>>();
    super::sse(events, std::time::Duration::ZERO, None, false)
}

async fn list(State(state): State<MockState>, headers: HeaderMap) -> Response {
    match super::admit(&state, "/v1beta/models", &headers, &Bytes::new()) {
        Err(denied) => denied,
        Ok(_) => {
            axum::Json(json!({"models": [{"name": "models/gemini-2.5-flash"}, {"name": "models/gemini-2.5-pro"}]}))
                .into_response()
        }
    }
}
