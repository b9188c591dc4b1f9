//! The metered provider's Bedrock Converse side: `/model/{model}/converse` and
//! `/converse-stream`, each request's SigV4 signature checked, billing exactly as the chat side
//! does (the prompt as its tokenizer counts it, every token written, `maxTokens` obeyed), the
//! stream in event-stream frames with the usage in its closing `metadata` event.

use super::*;
use crate::mock::bedrock;

pub async fn converse(books: Shared, stream: bool, body: &Value) -> Response {
    let asked = match bound(&body["inferenceConfig"], "maxTokens") {
        Ok(a) => a,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(status) = refused(&books, body) {
        let kind = if status.is_server_error() { "InternalServerException" } else { "ValidationException" };
        return Response::builder()
            .status(status)
            .header("x-amzn-errortype", kind)
            .body(Body::from(json!({"message": "The request could not be served."}).to_string()))
            .unwrap();
    }
    let (tag, plan, per_choice, prompt) = admit(&books, body, asked, 1, !stream);
    tokio::time::sleep(plan.first_delay).await;
    let usage =
        move |written: u64| json!({"inputTokens": prompt, "outputTokens": written, "totalTokens": prompt + written});
    if !stream {
        let text: String = (0..per_choice).map(word).collect();
        return axum::Json(json!({"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "max_tokens", "usage": usage(per_choice), "metrics": {"latencyMs": 1}}))
        .into_response();
    }
    let frame = |name: &str, payload: &Value| {
        let headers = [(":event-type", name), (":content-type", "application/json"), (":message-type", "event")];
        Bytes::from(bedrock::frame(&headers, payload.to_string().as_bytes()))
    };
    let head = futures::stream::iter([frame("messageStart", &json!({"role": "assistant"}))]);
    let (written, breaks) = until_error(&plan, per_choice);
    let deltas = token_stream(Arc::clone(&books), tag, plan.gap, written, |i| {
        json!({"contentBlockIndex": 0, "delta": {"text": word(i)}}).to_string()
    })
    .map(move |delta| frame("contentBlockDelta", &serde_json::from_str(&delta).unwrap_or(Value::Null)));
    if breaks {
        let headers = [
            (":message-type", "exception"),
            (":exception-type", "modelStreamErrorException"),
            (":content-type", "application/json"),
        ];
        let exception = Bytes::from(bedrock::frame(&headers, json!({"message": BROKE}).to_string().as_bytes()));
        return Response::builder()
            .header("content-type", "application/vnd.amazon.eventstream")
            .body(Body::from_stream(
                head.chain(deltas).chain(futures::stream::iter([exception])).map(Ok::<_, std::io::Error>),
            ))
            .unwrap();
    }
    let end = futures::stream::iter([
        frame("contentBlockStop", &json!({"contentBlockIndex": 0})),
        frame("messageStop", &json!({"stopReason": "max_tokens"})),
        frame("metadata", &json!({"usage": usage(per_choice), "metrics": {"latencyMs": 1}})),
    ]);
    Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .body(Body::from_stream(head.chain(deltas).chain(end).map(Ok::<_, std::io::Error>)))
        .unwrap()
}
