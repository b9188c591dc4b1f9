//! A chat completions request read once into typed turns, tools, tool choice and output format,
//! for the formats that rebuild a request in their own shape (Anthropic's Messages for the output
//! format; Gemini's `contents` and Converse's `messages` for all of it).
//! The roles, text joining, `data:` images, tool calls with JSON arguments and function tools are
//! read here, once, so each format only writes its own blocks, and a misspelt field is a compile
//! error rather than a silent `null`.

use serde_json::{Map, Value};

use crate::protocols::Refusal;

/// One message of the conversation.
#[derive(Debug, PartialEq)]
pub enum Turn<'a> {
    /// A `system` or `developer` message's text.
    System(String),
    User(Vec<Part<'a>>),
    Assistant {
        text: String,
        calls: Vec<ToolCall<'a>>,
    },
    /// A tool's result (its text), answering the call `call_id`.
    Tool {
        call_id: &'a str,
        result: String,
    },
}

/// A part of a user message.
#[derive(Debug, PartialEq)]
pub enum Part<'a> {
    Text(String),
    /// An image inline as a `data:` URL: its media type (`image/png`) and its base64 data.
    InlineImage {
        mime: &'a str,
        data: &'a str,
    },
    /// An image by URL, or a `data:` URL that is not base64 (these formats fetch nothing).
    ImageUrl(&'a str),
    /// A part of another type (named).
    Other(&'a str),
}

/// An assistant's call of a function tool.
#[derive(Debug, PartialEq)]
pub struct ToolCall<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The arguments, parsed (an empty string is `{}`).
    pub arguments: Value,
}

/// A function tool the client offers.
#[derive(Debug, PartialEq)]
pub struct FunctionTool<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// Its parameters' JSON Schema, if given.
    pub parameters: Option<&'a Value>,
}

/// What the client said about using tools (`tool_choice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    /// This function must be called.
    Function(&'a str),
}

/// The tool a JSON-mode request is answered through where the provider has no JSON mode (Claude,
/// Converse): forced, taking any object; its input is the answer's text, and a call of it is never
/// a tool call for the client.
pub const JSON_TOOL: &str = "perpetuo_json_answer";

/// What the client asked the answer's text to be (`response_format`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputFormat<'a> {
    /// Free text (`text`, or no `response_format`).
    Text,
    /// Any JSON object (OpenAI's JSON mode).
    JsonObject,
    /// JSON matching `schema` (structured outputs).
    JsonSchema { name: &'a str, description: Option<&'a str>, schema: &'a Value, strict: bool },
}

/// The client's `response_format`: refused when it names no known type, or a schema without one.
pub fn output_format(chat: &Map<String, Value>) -> Result<OutputFormat<'_>, Refusal> {
    let Some(format) = chat.get("response_format").filter(|f| !f.is_null()) else { return Ok(OutputFormat::Text) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(OutputFormat::Text),
        Some("json_object") => Ok(OutputFormat::JsonObject),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                Refusal::of("`response_format.json_schema.schema` must be a JSON Schema object.", "response_format")
            })?;
            Ok(OutputFormat::JsonSchema {
                name: spec.get("name").and_then(Value::as_str).unwrap_or("response"),
                description: spec.get("description").and_then(Value::as_str),
                schema,
                strict: spec.get("strict").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        _ => Err(Refusal::of(
            "`response_format.type` must be `text`, `json_object` or `json_schema`.",
            "response_format",
        )),
    }
}

/// A message's text: a string, or the text parts of an array joined by newlines.
pub fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn parts(content: Option<&Value>) -> Vec<Part<'_>> {
    let Some(Value::Array(parts)) = content else {
        return vec![Part::Text(text_of(content))];
    };
    parts
        .iter()
        .filter_map(|part| match part.get("type").and_then(Value::as_str)? {
            "text" => Some(Part::Text(str_at(part, "text").to_owned())),
            "image_url" => {
                let url = part.get("image_url").map_or("", |i| str_at(i, "url"));
                let inline = url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,"));
                Some(match inline {
                    Some((mime, data)) => Part::InlineImage { mime, data },
                    None => Part::ImageUrl(url),
                })
            }
            other => Some(Part::Other(other)),
        })
        .collect()
}

fn tool_call(call: &Value) -> Result<ToolCall<'_>, Refusal> {
    let function = call.get("function").unwrap_or(&Value::Null);
    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
    let arguments = serde_json::from_str(if arguments.trim().is_empty() { "{}" } else { arguments })
        .map_err(|_| Refusal::of("A tool call's `arguments` must be JSON.", "messages"))?;
    Ok(ToolCall { id: str_at(call, "id"), name: str_at(function, "name"), arguments })
}

/// The conversation, in order.
pub fn turns(chat: &Map<String, Value>) -> Result<Vec<Turn<'_>>, Refusal> {
    let messages = chat
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::of("`messages` must be an array.", "messages"))?;
    messages
        .iter()
        .map(|message| {
            let content = message.get("content");
            Ok(match str_at(message, "role") {
                "system" | "developer" => Turn::System(text_of(content)),
                "user" => Turn::User(parts(content)),
                "assistant" => Turn::Assistant {
                    text: text_of(content),
                    calls: message
                        .get("tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(tool_call)
                        .collect::<Result<_, _>>()?,
                },
                "tool" => Turn::Tool { call_id: str_at(message, "tool_call_id"), result: text_of(content) },
                other => return Err(Refusal::of(format!("Unknown message role `{other}`."), "messages")),
            })
        })
        .collect()
}

/// The function tools offered; any other kind of tool is refused with `refusal`.
pub fn function_tools<'a>(chat: &'a Map<String, Value>, refusal: &str) -> Result<Vec<FunctionTool<'a>>, Refusal> {
    chat.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tool| {
            let function = tool
                .get("function")
                .filter(|_| tool.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| Refusal::of(refusal, "tools"))?;
            Ok(FunctionTool {
                name: str_at(function, "name"),
                description: function.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()),
                parameters: function.get("parameters"),
            })
        })
        .collect()
}

/// The client's `tool_choice`, if it gave one (`auto` for a value of no known form).
pub fn tool_choice(chat: &Map<String, Value>) -> Option<ToolChoice<'_>> {
    Some(match chat.get("tool_choice")? {
        Value::String(mode) if mode == "none" => ToolChoice::None,
        Value::String(mode) if mode == "required" => ToolChoice::Required,
        Value::Object(forced) => ToolChoice::Function(forced.get("function").map_or("", |f| str_at(f, "name"))),
        _ => ToolChoice::Auto,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_conversation_reads_as_typed_turns() {
        let body = chat(json!({"messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be"}, {"type": "text", "text": "brief"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "input_audio", "input_audio": {}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"a\":2}"}
        ]}));
        let turns = turns(&body).unwrap();
        assert_eq!(turns[0], Turn::System("be\nbrief".into()));
        assert_eq!(
            turns[1],
            Turn::User(vec![
                Part::Text("look".into()),
                Part::InlineImage { mime: "image/png", data: "AAAA" },
                Part::ImageUrl("https://example.com/cat.png"),
                Part::Other("input_audio"),
            ])
        );
        let Turn::Assistant { text, calls } = &turns[2] else { panic!("{:?}", turns[2]) };
        assert!(text.is_empty());
        assert_eq!(calls[0], ToolCall { id: "call_1", name: "get", arguments: json!({"q": 1}) });
        assert_eq!(calls[1].arguments, json!({}));
        assert_eq!(turns[3], Turn::Tool { call_id: "call_1", result: "{\"a\":2}".into() });
    }

    #[test]
    fn bad_roles_arguments_and_tools_are_refused_by_field() {
        let role = chat(json!({"messages": [{"role": "narrator", "content": "x"}]}));
        assert_eq!(turns(&role).unwrap_err().param, Some("messages"));
        let args = chat(json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]}));
        assert!(turns(&args).unwrap_err().message.contains("arguments"));
        assert!(turns(&chat(json!({"messages": "hi"}))).is_err());
        let hosted = chat(json!({"tools": [{"type": "web_search"}]}));
        assert_eq!(function_tools(&hosted, "functions only").unwrap_err().param, Some("tools"));
    }

    #[test]
    fn response_formats_read_typed() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let body = chat(json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": true}}}));
        assert_eq!(
            output_format(&body).unwrap(),
            OutputFormat::JsonSchema { name: "thing", description: None, schema: &schema, strict: true }
        );
        let mode = chat(json!({"response_format": {"type": "json_object"}}));
        assert_eq!(output_format(&mode).unwrap(), OutputFormat::JsonObject);
        assert_eq!(output_format(&Map::new()).unwrap(), OutputFormat::Text);
        for bad in [json!({"type": "yaml"}), json!({"type": "json_schema", "json_schema": {"name": "x"}})] {
            assert_eq!(
                output_format(&chat(json!({"response_format": bad}))).unwrap_err().param,
                Some("response_format")
            );
        }
    }

    #[test]
    fn tool_choice_has_four_forms() {
        let bodies = [json!("none"), json!("required"), json!("auto"), json!({"function": {"name": "get"}})]
            .map(|choice| chat(json!({ "tool_choice": choice })));
        let choices: Vec<_> = bodies.iter().map(|body| tool_choice(body).unwrap()).collect();
        assert_eq!(choices, [ToolChoice::None, ToolChoice::Required, ToolChoice::Auto, ToolChoice::Function("get")]);
        assert_eq!(tool_choice(&Map::new()), None);
    }
}
