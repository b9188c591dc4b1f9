"""The official `anthropic` Python SDK against Perpetuo's /v1/messages: create, stream, a tool
round trip and count_tokens, for each model given (one behind an Anthropic provider, passed
through; one behind an OpenAI-compatible provider, translated), then the errors. Exits non-zero
on any mismatch. Run by tests/api/sdk.rs, which starts Perpetuo and the mock providers."""

import sys

import anthropic

base_url, api_key, *models = sys.argv[1:]
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)

TOOLS = [{
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]

for model in models:
    # Plain.
    message = client.messages.create(
        model=model, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Say hello"}],
    )
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text.startswith("Hello"), f"{model}: unexpected content {message.content!r}"
    assert message.stop_reason == "end_turn", f"{model}: stop_reason {message.stop_reason}"
    assert message.usage.output_tokens == 7, f"{model}: usage {message.usage}"
    assert message.usage.input_tokens == 11, f"{model}: usage {message.usage}"

    # Streaming, through the SDK's own accumulating helper.
    with client.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Say hello"}],
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed.startswith("Hello"), f"{model}: streamed {streamed!r}"
    assert final.stop_reason == "end_turn", f"{model}: streamed stop_reason {final.stop_reason}"
    assert final.usage.output_tokens == 7, f"{model}: streamed usage {final.usage}"

    # A tool round trip: the call, plain and streamed, then its result sent back.
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    message = client.messages.create(model=model, max_tokens=100, messages=ask, tools=TOOLS)
    uses = [b for b in message.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather", f"{model}: tool uses {message.content!r}"
    assert uses[0].input == {"city": "Paris"}, f"{model}: tool input {uses[0].input!r}"
    assert message.stop_reason == "tool_use", f"{model}: stop_reason {message.stop_reason}"

    with client.messages.stream(model=model, max_tokens=100, messages=ask, tools=TOOLS) as stream:
        final = stream.get_final_message()
    streamed_uses = [b for b in final.content if b.type == "tool_use"]
    assert streamed_uses and streamed_uses[0].input == {"city": "Paris"}, f"{model}: streamed tool use {final.content!r}"
    assert final.stop_reason == "tool_use", f"{model}: streamed stop_reason {final.stop_reason}"

    follow = client.messages.create(
        model=model, max_tokens=100, tools=TOOLS,
        messages=ask + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C and sunny"}]},
        ],
    )
    assert follow.content, f"{model}: no answer after the tool result"

    # Token count: Anthropic's own, or Perpetuo's estimate.
    count = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "Hello there"}])
    assert count.input_tokens > 0, f"{model}: count {count}"

    # Claude Code's shape: the beta API with its beta headers, a system prompt in blocks with
    # cache_control, metadata, a client tool and the web search server tool (dropped for a
    # provider that is not Anthropic, named in a header), streamed, then count_tokens the same way.
    betas = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"]
    code_tools = TOOLS + [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": "Follow the repository's conventions.", "cache_control": {"type": "ephemeral"}},
    ]
    raw = client.beta.messages.with_raw_response.create(
        model=model, max_tokens=200, betas=betas, system=system, tools=code_tools, messages=ask,
        metadata={"user_id": "user_abc_account_def_session_ghi"},
    )
    # `kind/model` here names a provider that is not Anthropic's API (Vertex AI's Claude is).
    translated = "/" in model and not model.startswith(("vertex/", "bedrock/"))
    dropped = raw.headers.get("x-perpetuo-dropped-tools")
    assert dropped == ("web_search_20250305" if translated else None), f"{model}: dropped {dropped!r}"
    coded = raw.parse()
    assert [b.name for b in coded.content if b.type == "tool_use"] == ["get_weather"], f"{model}: {coded.content!r}"
    with client.beta.messages.stream(
        model=model, max_tokens=200, betas=betas, system=system, tools=code_tools, messages=ask,
    ) as stream:
        final = stream.get_final_message()
    assert any(b.type == "tool_use" for b in final.content), f"{model}: streamed {final.content!r}"
    counted = client.beta.messages.count_tokens(model=model, betas=betas, system=system, tools=code_tools, messages=ask)
    assert counted.input_tokens > 0, f"{model}: beta count {counted}"
    print(f"ok: {model}")

# Errors, as the SDK types them.
try:
    anthropic.Anthropic(base_url=base_url, api_key="pk_not_a_key", max_retries=0).messages.create(
        model=models[0], max_tokens=10, messages=[{"role": "user", "content": "hi"}],
    )
    raise SystemExit("a bad key was accepted")
except anthropic.AuthenticationError as e:
    assert e.body["error"]["type"] == "authentication_error", e.body
try:
    client.messages.create(model="mistral/no-such-provider", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("an unknown model was served")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body
try:
    client.messages.create(model=models[0], max_tokens=10, messages="not a list")
    raise SystemExit("a malformed request was served")
except anthropic.BadRequestError as e:
    assert e.body["error"]["type"] == "invalid_request_error", e.body
print("ok: errors")
