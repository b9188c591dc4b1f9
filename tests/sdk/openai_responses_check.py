"""The official `openai` Python SDK against Perpetuo's /v1/responses: create, streaming (raw
events and the SDK's accumulating helper) and a function-tool round trip, for each model given
(behind OpenAI itself, passed through; behind other kinds, translated). Exits non-zero on any
mismatch. Run by tests/api/sdk.rs, which starts Perpetuo and the mock providers."""

import json
import sys

import openai

base_url, api_key, *models = sys.argv[1:]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]

for model in models:
    response = client.responses.create(model=model, input="Say hello", instructions="Be brief.")
    assert response.output_text.startswith("Hello"), f"{model}: output {response.output!r}"
    assert response.status == "completed", f"{model}: status {response.status}"
    assert response.usage.input_tokens == 11 and response.usage.output_tokens == 7, f"{model}: usage {response.usage}"

    # Streaming: the raw typed events, numbered in order.
    events = list(client.responses.create(model=model, input="Say hello", stream=True))
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), f"{model}: numbering {numbers}"
    assert events[0].type == "response.created" and events[-1].type == "response.completed", [e.type for e in events]
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed.startswith("Hello"), f"{model}: streamed {streamed!r}"
    assert events[-1].response.usage.output_tokens == 7, f"{model}: streamed usage {events[-1].response.usage}"

    # The SDK's helper rebuilds the response from the events.
    with client.responses.stream(model=model, input="Say hello") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text.startswith("Hello"), f"{model}: helper output {final.output!r}"

    # A function-tool round trip.
    response = client.responses.create(model=model, input="Weather in Paris?", tools=TOOLS)
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather", f"{model}: output {response.output!r}"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}, calls[0].arguments
    with client.responses.stream(model=model, input="Weather in Paris?", tools=TOOLS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    streamed_calls = [item for item in final.output if item.type == "function_call"]
    assert streamed_calls and json.loads(streamed_calls[0].arguments) == {"city": "Paris"}, f"{model}: {final.output!r}"
    follow = client.responses.create(
        model=model, tools=TOOLS,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name, "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"},
        ],
    )
    assert follow.output, f"{model}: no answer after the function output"
    print(f"ok: {model}")

# Codex-shaped calls (Codex 0.171: a namespace of function tools, a hosted web_search, `include`,
# `prompt_cache_key`, `client_metadata`) on the providers that are not OpenAI: the hosted tool is
# dropped (and named in a header), the namespaced tool's call comes back under its own name and
# namespace, plain and streamed, and the round trip ends with an answer.
CODEX_TOOLS = [
    {"type": "namespace", "name": "multi_agent_v1", "description": "Helper agents.", "tools": [
        {"type": "function", "name": "spawn_agent", "description": "Start a helper.", "strict": False,
         "parameters": {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}},
    ]},
    {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
    {"type": "web_search"},
]
CODEX_EXTRA = {"prompt_cache_key": "codex-session-1", "client_metadata": {"originator": "codex_cli_rs"}}


def namespace_of(item):
    return getattr(item, "namespace", None) or (item.model_extra or {}).get("namespace")


# (OpenAI and Azure OpenAI take Responses natively: hosted tools are theirs to run.)
for model in [m for m in models if not m.startswith(("gpt-", "azure/"))]:
    ask = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Split the work."}]}]
    common = dict(model=model, instructions="You are Codex.", tools=CODEX_TOOLS, tool_choice="auto",
                  parallel_tool_calls=False, store=False, include=["reasoning.encrypted_content"], extra_body=CODEX_EXTRA)
    raw = client.responses.with_raw_response.create(input=ask, **common)
    assert raw.headers.get("x-perpetuo-dropped-tools") == "web_search", f"{model}: headers {dict(raw.headers)}"
    response = raw.parse()
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "spawn_agent" and namespace_of(calls[0]) == "multi_agent_v1", f"{model}: {response.output!r}"
    with client.responses.stream(input=ask, **common) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    streamed = [item for item in final.output if item.type == "function_call"]
    assert streamed and streamed[0].name == "spawn_agent" and namespace_of(streamed[0]) == "multi_agent_v1", f"{model}: {final.output!r}"
    follow = client.responses.create(input=ask + [
        {"type": "function_call", "call_id": calls[0].call_id, "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "helper started"},
    ], **common)
    assert follow.output_text, f"{model}: no answer after the namespaced call's output: {follow.output!r}"
    print(f"ok: codex {model}")

# A provider that keeps no responses (not OpenAI's or Azure's) refuses previous_response_id.
stateless = [m for m in models if not m.startswith(("gpt-", "azure/"))][-1]
try:
    client.responses.create(model=stateless, input="more", previous_response_id="resp_unknown")
    raise SystemExit("previous_response_id was accepted by a provider that keeps no state")
except openai.BadRequestError as e:
    assert e.body["param"] == "previous_response_id", e.body
print("ok: errors")
