//! Form and query-string helpers shared by the pages and the server functions.

/// A form or query field with its surrounding space removed; `None` when left empty.
pub fn given(field: Option<&str>) -> Option<String> {
    field.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `a=b&c=d`, percent-encoded; pairs with empty values are left out.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
