//! The metered provider's Gemini side: `generateContent` and `streamGenerateContent?alt=sse`
//! under `/v1beta`, the key in `x-goog-api-key`, billing exactly as the chat side does (the
//! prompt as its tokenizer counts it, every token written, `maxOutputTokens` obeyed).

use super::*;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1beta/models/{action}", post(generate))
        .route("/v1/projects/{project}/locations/{location}/publishers/google/models/{action}", post(on_vertex))
}

/// Gemini on Vertex AI: the token the metered Vertex issued, then Gemini's own answer and bill.
async fn on_vertex(
    books: State<Shared>,
    axum::extract::Path((_, _, action)): axum::extract::Path<(String, String, String)>,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {VERTEX_TOKEN}")) {
        return openai_error(StatusCode::UNAUTHORIZED, "Request had invalid authentication credentials.");
    }
    headers.insert("x-goog-api-key", http::HeaderValue::from_static(KEY));
    generate(books, axum::extract::Path(action), headers, body).await
}

async fn generate(
    State(books): State<Shared>,
    axum::extract::Path(action): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return openai_error(StatusCode::BAD_REQUEST, "API key not valid. Please pass a valid API key.");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return openai_error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let asked = match bound(&body["generationConfig"], "maxOutputTokens") {
        Ok(a) => a,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(status) = refused(&books, &body) {
        let error = json!({"error": {"code": status.as_u16(), "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}});
        return (status, axum::Json(error)).into_response();
    }
    let stream = action.ends_with(":streamGenerateContent");
    let (tag, plan, per_choice, prompt) = admit(&books, &body, asked, 1, !stream);
    tokio::time::sleep(plan.first_delay).await;
    let usage = move |written: u64| json!({"promptTokenCount": prompt, "candidatesTokenCount": written, "totalTokenCount": prompt + written});
    if !stream {
        let text: String = (0..per_choice).map(word).collect();
        return axum::Json(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": "MAX_TOKENS", "index": 0}], "usageMetadata": usage(per_choice)}))
        .into_response();
    }
    let chunk = |i: u64| {
        let event = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": word(i)}]}, "index": 0}]});
        format!("data: {event}\r\n\r\n")
    };
    let (written, breaks) = until_error(&plan, per_choice);
    let tokens = token_stream(Arc::clone(&books), tag, plan.gap, written, chunk);
    if breaks {
        let error = json!({"error": {"code": 500, "message": BROKE, "status": "INTERNAL"}});
        return sse(tokens.chain(futures::stream::iter([format!("data: {error}\r\n\r\n")])));
    }
    let last = json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "MAX_TOKENS", "index": 0}],
        "usageMetadata": usage(per_choice)});
    sse(tokens.chain(futures::stream::iter([format!("data: {last}\r\n\r\n")])))
}
