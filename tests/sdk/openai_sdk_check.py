"""The official `openai` Python SDK against Perpetuo: chat, streaming and tools, for each model
given (one behind an OpenAI-compatible provider, one behind Anthropic). Exits non-zero on any
mismatch. Run by tests/api/sdk.rs, which starts Perpetuo and the mock providers."""

import json
import sys

import openai
import pydantic

base_url, api_key, *models = sys.argv[1:]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]

for model in models:
    # Plain chat.
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hello"}])
    text = completion.choices[0].message.content
    assert text and text.startswith("Hello"), f"{model}: unexpected content {text!r}"
    assert completion.usage.prompt_tokens == 11 and completion.usage.completion_tokens == 7, f"{model}: usage {completion.usage}"
    assert completion.choices[0].finish_reason == "stop", completion.choices[0].finish_reason

    # Raw response: Perpetuo's headers are there.
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert raw.headers.get("x-request-id", "").startswith("req_"), raw.headers
    assert raw.headers.get("x-perpetuo-attempts") == "1", raw.headers

    # Streaming, with usage asked for.
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    streamed = "".join(pieces)
    assert streamed.startswith("Hello"), f"{model}: streamed {streamed!r}"
    assert finish == "stop", f"{model}: finish {finish}"
    assert usage is not None and usage.completion_tokens == 7, f"{model}: stream usage {usage}"

    # Tools, plain and streamed.
    tool_completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS,
    )
    calls = tool_completion.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather", f"{model}: tool calls {calls}"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}, calls[0].function.arguments
    assert tool_completion.choices[0].finish_reason == "tool_calls"

    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS, stream=True,
    )
    arguments, name = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    name = call.function.name
                if call.function and call.function.arguments:
                    arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert name == "get_weather", f"{model}: streamed tool name {name}"
    assert json.loads(arguments[0]) == {"city": "Paris"}, f"{model}: streamed arguments {arguments}"

    # A tool result sent back is accepted.
    follow = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "Sunny, 21 C"},
        ],
    )
    assert follow.choices[0].message.content.startswith("Hello")
    print(f"ok: {model}")

# Structured outputs with the SDK's `parse` helper (a Pydantic model as the schema): passed
# through to the OpenAI-style provider, and as Claude's `output_config.format` to Anthropic.
class Trip(pydantic.BaseModel):
    city: str
    days: int


for model in models[:2]:
    parsed = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Plan a trip"}], response_format=Trip,
    )
    trip = parsed.choices[0].message.parsed
    assert isinstance(trip, Trip) and trip.city == "mock" and trip.days == 1, f"{model}: parsed {trip!r}"
print("ok: structured outputs")

# Errors come back as the SDK's typed exceptions.
try:
    openai.OpenAI(base_url=base_url, api_key="pk_wrong", max_retries=0).chat.completions.create(
        model=models[0], messages=[{"role": "user", "content": "x"}])
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401
print("ok: errors")
