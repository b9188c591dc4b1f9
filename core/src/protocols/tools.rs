//! Tools across a translation: namespaced tools (a Responses `namespace` groups function tools
//! under one name) flattened to plain function tools and their calls named back, and the hosted
//! tools a provider of another family cannot run, which are dropped when merely offered.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The longest function name every chat dialect accepts (OpenAI's and Anthropic's rule:
/// `^[a-zA-Z0-9_-]{1,64}$`).
const MAX_NAME: usize = 64;

/// A namespaced tool's flat name: `namespace__tool` when that is a valid function name, else the
/// same made valid (other characters as `_`, cut to fit) with 8 hex digits of its hash, so that
/// two tools never share a name. The same inputs always give the same name, so a call sent back in
/// a later turn is flattened as the tool was.
pub fn flat_name(namespace: &str, name: &str) -> String {
    let raw = format!("{namespace}__{name}");
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if raw.len() <= MAX_NAME && raw.chars().all(valid) {
        return raw;
    }
    let clean: String = raw.chars().map(|c| if valid(c) { c } else { '_' }).take(MAX_NAME - 9).collect();
    let hash = Sha256::digest(raw.as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{clean}_{hex}")
}

/// The flat names a request's namespaced tools were given, to name their calls back.
#[derive(Debug, Default, Clone)]
pub struct ToolNames {
    /// flat name -> (namespace, the tool's own name)
    flat: HashMap<String, (String, String)>,
}

impl ToolNames {
    /// The names of a Responses request's namespaced tools (none for other protocols).
    pub fn of_responses(body: &serde_json::Map<String, Value>) -> Arc<Self> {
        let mut flat = HashMap::new();
        for group in body.get("tools").and_then(Value::as_array).into_iter().flatten() {
            if group.get("type").and_then(Value::as_str) != Some("namespace") {
                continue;
            }
            let namespace = group.get("name").and_then(Value::as_str).unwrap_or_default();
            for tool in group.get("tools").and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = tool.get("name").and_then(Value::as_str) {
                    flat.insert(flat_name(namespace, name), (namespace.to_owned(), name.to_owned()));
                }
            }
        }
        Arc::new(Self { flat })
    }

    /// The namespace and own name of a flat name, when it is one of the request's.
    pub fn split(&self, flat: &str) -> Option<(&str, &str)> {
        self.flat.get(flat).map(|(ns, name)| (ns.as_str(), name.as_str()))
    }
}

/// OpenAI's hosted tools (run by OpenAI, not by the client): another provider cannot run them.
pub fn is_openai_hosted(kind: &str) -> bool {
    !matches!(kind, "function" | "namespace" | "custom")
}

/// The hosted tools a translated request goes without, for the answer's header and the record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped(pub Vec<String>);

impl Dropped {
    pub fn add(&mut self, kind: &str) {
        if !self.0.iter().any(|k| k == kind) {
            self.0.push(kind.to_owned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `web_search, file_search`: the header's value and the record's note.
    pub fn list(&self) -> String {
        self.0.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_names_are_valid_unique_and_stable() {
        assert_eq!(flat_name("multi_agent_v1", "spawn_agent"), "multi_agent_v1__spawn_agent");
        let odd = flat_name("mcp.server:files", "read");
        assert!(odd.len() <= MAX_NAME && odd.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)), "{odd}");
        assert_eq!(odd, flat_name("mcp.server:files", "read"));
        assert_ne!(odd, flat_name("mcp_server_files", "read"), "a cleaned name never meets the plain one");
        let long = flat_name(&"n".repeat(40), &"t".repeat(40));
        assert!(long.len() <= MAX_NAME, "{long}");
        assert_ne!(long, flat_name(&"n".repeat(40), &"t".repeat(41)));
    }

    #[test]
    fn names_come_back_only_for_the_requests_namespaced_tools() {
        let body = json!({"tools": [
            {"type": "function", "name": "shell"},
            {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "spawn_agent"}]},
        ]});
        let names = ToolNames::of_responses(body.as_object().unwrap());
        assert_eq!(names.split("multi_agent_v1__spawn_agent"), Some(("multi_agent_v1", "spawn_agent")));
        assert_eq!(names.split("shell"), None);
        assert_eq!(names.split("mcp__server__tool"), None, "a function tool's own double underscore is left alone");
    }
}
