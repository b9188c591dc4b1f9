use super::*;

fn labels() -> AnswerLabels {
    AnswerLabels {
        id: "req1".into(),
        model: "gemini-2.5-flash".into(),
        created: 7,
        include_usage: true,
        max_kept_bytes: 1 << 20,
    }
}

fn chat(value: Value) -> Map<String, Value> {
    serde_json::from_value(value).unwrap_or_default()
}

#[test]
fn urls_name_the_model_and_the_old_shim_base_still_works() {
    let at = Address { model: "gemini-2.5-flash", ..Address::base(ROOT) };
    assert_eq!(
        Gemini.url(&at, Endpoint::Call(Protocol::Chat)),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    let old = Address { base_url: "https://generativelanguage.googleapis.com/v1beta/openai", ..at }.streamed(true);
    assert_eq!(
        Gemini.url(&old, Endpoint::Call(Protocol::Messages)),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(Gemini.url(&old, Endpoint::Call(Protocol::Embeddings)).ends_with("/v1beta/openai/embeddings"));
    assert_eq!(Gemini.auth_headers(&SecretBytes::new(b"AIza-key".to_vec()))[0].0.as_str(), "x-goog-api-key");
}

#[test]
fn requests_carry_system_tools_results_images_and_limits() {
    let body = request(
        &chat(json!({"model": "g", "temperature": 0.2, "stop": "END", "tool_choice": "required",
            "reasoning_effort": "low", "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0_c2lnbmF0dXJl", "type": "function",
                    "function": {"name": "look", "arguments": "{\"at\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "call_0_c2lnbmF0dXJl", "content": "a cat"}],
            "tools": [{"type": "function", "function": {"name": "look", "description": "Look",
                "parameters": {"type": "object", "properties": {"at": {"type": "string"}}}}}]})),
        500,
    )
    .unwrap_or_default();
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(body["contents"][0]["parts"][1]["inlineData"], json!({"mimeType": "image/png", "data": "iVBOR"}));
    let call = &body["contents"][1];
    assert_eq!(call["role"], "model");
    assert_eq!(call["parts"][0]["functionCall"], json!({"name": "look", "args": {"at": "x"}}));
    assert_eq!(call["parts"][0]["thoughtSignature"], "c2lnbmF0dXJl", "the signature goes back with its call");
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "look", "response": {"result": "a cat"}})
    );
    assert_eq!(body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["type"], "object");
    assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "ANY");
    let config = &body["generationConfig"];
    assert_eq!((config["maxOutputTokens"].as_u64(), config["temperature"].as_f64()), (Some(500), Some(0.2)));
    assert_eq!(config["stopSequences"], json!(["END"]));
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["thinkingConfig"]["thinkingBudget"], 499, "thinking held inside the output bound");
    let url_image = chat(
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
    );
    assert!(request(&url_image, 10).is_err());
    let orphan = chat(json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    assert!(request(&orphan, 10).is_err());
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let structured = chat(json!({"messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}}));
    let config = &request(&structured, 10).unwrap()["generationConfig"];
    assert_eq!(
        (config["responseMimeType"].as_str(), &config["responseJsonSchema"]),
        (Some("application/json"), &schema)
    );
}

#[test]
fn answers_become_chat_with_calls_thoughts_and_billed_usage() {
    let body = json!({"responseId": "r1", "modelVersion": "gemini-2.5-flash",
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Planning.", "thought": true},
            {"text": "Let me look."},
            {"functionCall": {"name": "look", "args": {"at": "x"}}, "thoughtSignature": "c2ln+/=="}]},
            "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 40, "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30, "totalTokenCount": 150}});
    let (answer, tokens) = answer::response(&body, &labels());
    let message = &answer["choices"][0]["message"];
    assert_eq!(message["content"], "Let me look.");
    assert_eq!(message["reasoning_content"], "Planning.");
    let id = message["tool_calls"][0]["id"].as_str().unwrap_or_default();
    assert_eq!(id, "call_0_c2ln-_");
    assert_eq!(answer::signature_in(id).as_deref(), Some("c2ln+/=="), "the signature survives the round trip");
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        tokens,
        TokenCounts {
            prompt: 100,
            completion: 50,
            cache_read: 40,
            cache_write: 0,
            reasoning: 30,
            ..TokenCounts::default()
        }
    );
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}});
    assert_eq!(answer::response(&blocked, &labels()).0["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn streams_become_chat_chunks_and_end_at_the_finish_reason() {
    let mut source = answer::Chunks::new(&labels());
    let mut out = Vec::new();
    let event = |data: Value| crate::protocols::sse::Event { name: None, data: data.to_string() };
    let first =
        json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 9}});
    let last = json!({"candidates": [{"content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4}});
    assert!(source.event(&event(first), &mut out).is_ok());
    assert!(!source.finished());
    assert!(source.event(&event(last), &mut out).is_ok());
    assert!(source.finished() && source.complete_on_close());
    let deltas: Vec<&Value> = out.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!((deltas[1]["content"].as_str(), deltas[2]["content"].as_str()), (Some("Hel"), Some("lo")));
    assert_eq!(deltas[3]["tool_calls"][0]["function"]["name"], "f");
    assert_eq!(out.last().map(|c| c["choices"][0]["finish_reason"].clone()), Some(json!("tool_calls")));
    assert_eq!(source.tokens().completion, 4);
    let mut failing = answer::Chunks::new(&labels());
    assert!(failing.event(&event(json!({"error": {"message": "quota"}})), &mut out).is_err());
}
