//! Redacting what looks like a credential out of a captured body before it is sealed: provider
//! and platform key formats (OpenAI, Anthropic, Perpetuo, AWS, Google, GitHub, Slack, Stripe,
//! Hugging Face, GitLab), JSON Web Tokens, `Bearer` tokens, PEM private keys, and the string
//! values of JSON fields whose names say they hold a secret. Works on text that may be cut
//! short: a credential-like word at the very end of a truncated body is dropped whole.

/// What a redacted value is replaced with.
pub const MARK: &str = "[REDACTED]";

/// Prefixes of credential formats, with the shortest whole token that counts as one.
const PREFIXES: &[(&str, usize)] = &[
    ("sk-", 20),
    ("pk_", 20),
    ("sk_live_", 16),
    ("sk_test_", 16),
    ("rk_live_", 16),
    ("ghp_", 20),
    ("gho_", 20),
    ("ghs_", 20),
    ("ghu_", 20),
    ("github_pat_", 20),
    ("glpat-", 20),
    ("xoxb-", 15),
    ("xoxp-", 15),
    ("xoxa-", 15),
    ("hf_", 20),
    ("AIza", 30),
    ("ya29.", 20),
];

/// JSON field names (lowercase, `-` and `_` ignored) whose string values are secrets.
const SECRET_FIELDS: &[&str] = &[
    "apikey",
    "xapikey",
    "password",
    "passwd",
    "secret",
    "clientsecret",
    "secretaccesskey",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authorization",
    "privatekey",
    "sessiontoken",
    "token",
];

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

/// Whether a whole word is a credential.
fn is_credential(word: &str) -> bool {
    let word = word.trim_end_matches(['.', '=', '/', '+']);
    if PREFIXES.iter().any(|(prefix, min)| word.starts_with(prefix) && word.len() >= *min) {
        return true;
    }
    // AWS access key ids: AKIA/ASIA and 16 more capitals or digits.
    if (word.starts_with("AKIA") || word.starts_with("ASIA"))
        && word.len() == 20
        && word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return true;
    }
    // A JSON Web Token: three base64url parts, the first a JSON header.
    if word.starts_with("eyJ") {
        let parts: Vec<&str> = word.split('.').collect();
        return parts.len() == 3 && parts.iter().all(|p| p.len() >= 4);
    }
    false
}

/// Whether a word could be the start of a credential cut off by the size cap.
fn could_be_credential(word: &str) -> bool {
    is_credential(word)
        || PREFIXES.iter().any(|(prefix, _)| word.starts_with(prefix) || prefix.starts_with(word))
        || word.starts_with("AKIA")
        || word.starts_with("ASIA")
        || word.starts_with("eyJ")
}

/// The text with every credential-like value replaced by [`MARK`], and how many were. `cut`:
/// the text stops at a size cap, so a credential-like word at its very end may be partial.
pub fn redact(text: &str, cut: bool) -> (String, u32) {
    let mut count = 0;
    let text = private_keys(text, &mut count);
    let text = secret_fields(&text, &mut count);
    let text = words(&text, cut, &mut count);
    (text, count)
}

/// PEM private key blocks, begin to end (or to the end of a cut text).
fn private_keys(text: &str, count: &mut u32) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let header_end = rest[start + 11..].find("-----").map(|i| start + 11 + i);
        let is_private = header_end.is_some_and(|end| rest[start..end].ends_with("PRIVATE KEY"));
        if !is_private {
            let skip = start + 11;
            out.push_str(&rest[..skip]);
            rest = &rest[skip..];
            continue;
        }
        out.push_str(&rest[..start]);
        out.push_str(MARK);
        *count += 1;
        let after = &rest[start + 11..];
        rest = match after.find("-----END ") {
            Some(end) => {
                let tail = &after[end + 9..];
                tail.find("-----").map_or("", |close| &tail[close + 5..])
            }
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// The normalised name of a JSON field: lowercase, without `-` and `_`.
fn field_name(name: &str) -> String {
    name.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

/// The string values of fields named like secrets: `"api_key": "..."` becomes `"api_key": "[REDACTED]"`.
fn secret_fields(text: &str, count: &mut u32) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A quoted name (no escapes in names worth redacting).
        let Some(len) = text[i + 1..].find('"') else { break };
        let name = &text[i + 1..i + 1 + len];
        let mut j = i + 1 + len + 1;
        if len > 40 || !SECRET_FIELDS.contains(&field_name(name).as_str()) {
            i = j;
            continue;
        }
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b':' {
            i = j;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'"' {
            i = j;
            continue;
        }
        // The value's end: the next quote not escaped (or the end of a cut text).
        let start = j + 1;
        let mut k = start;
        while k < bytes.len() && bytes[k] != b'"' {
            k += if bytes[k] == b'\\' { 2 } else { 1 };
        }
        let end = k.min(bytes.len());
        if end > start {
            out.push_str(&text[copied..start]);
            out.push_str(MARK);
            *count += 1;
            copied = end;
        }
        i = end + 1;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

/// Credential-shaped words, and the word after `Bearer `.
fn words(text: &str, cut: bool, count: &mut u32) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut after_bearer = false;
    while !rest.is_empty() {
        let start = rest.find(is_word).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        let last = end == rest.len();
        let secret = is_credential(word)
            || (after_bearer && word.len() >= 16)
            || (cut && last && (could_be_credential(word) || after_bearer));
        if secret {
            out.push_str(MARK);
            *count += 1;
        } else {
            out.push_str(word);
        }
        after_bearer = word.eq_ignore_ascii_case("bearer") && rest[end..].starts_with(' ');
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_formats_are_replaced() {
        let text = r#"{"messages":[{"role":"user","content":"my key is sk-proj-abcdefghijklmnopqrstuvwx and AKIAIOSFODNN7EXAMPLE, also pk_live_0123456789abcdefghij"}]}"#;
        let (out, n) = redact(text, false);
        assert_eq!(n, 3, "{out}");
        assert!(!out.contains("sk-proj") && !out.contains("AKIA") && !out.contains("pk_live"), "{out}");
        assert!(out.contains("my key is [REDACTED] and [REDACTED], also [REDACTED]"), "{out}");
    }

    #[test]
    fn ordinary_words_stay() {
        let text = "sk-learn is a library; the token budget is 5; eyJ alone; AKIA short; Bearer of news";
        let (out, n) = redact(text, false);
        assert_eq!((out.as_str(), n), (text, 0));
    }

    #[test]
    fn secret_fields_jwts_bearers_and_pem_blocks() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2hlcmU";
        let text = format!(
            r#"{{"api_key": "hunter2", "Password":"p\"w", "name":"ok", "auth":"Bearer abcdefghijklmnopqrst", "jwt":"{jwt}", "pem":"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "cert":"-----BEGIN CERTIFICATE-----"}}"#
        );
        let (out, n) = redact(&text, false);
        assert_eq!(n, 5, "{out}");
        for gone in ["hunter2", "p\\\"w", "abcdefghijklmnopqrst", jwt, "MIIB"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains(r#""name":"ok""#) && out.contains("BEGIN CERTIFICATE"), "{out}");
    }

    #[test]
    fn a_credential_cut_by_the_cap_is_dropped_whole() {
        let (out, n) = redact("the key: sk-ant-api03-abc", true);
        assert_eq!((out.as_str(), n), ("the key: [REDACTED]", 1));
        let (out, _) = redact("the key: sk-ant-api03-abc", false);
        assert_eq!(out, "the key: sk-ant-api03-abc", "whole short words are not keys");
        let (out, _) = redact(r#"{"password":"hun"#, true);
        assert_eq!(out, r#"{"password":"[REDACTED]"#);
    }

    proptest! {
        #[test]
        fn a_key_anywhere_in_any_text_is_gone(
            before in "[ -~]{0,40}",
            after in "[ -~]{0,40}",
            secret in "[A-Za-z0-9]{24,40}",
            cut in any::<bool>(),
        ) {
            let key = format!("sk-ant-{secret}");
            let text = format!("{before} {key} {after}");
            let (out, n) = redact(&text, cut);
            prop_assert!(!out.contains(&key), "{}", out);
            prop_assert!(n >= 1);
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}", cut in any::<bool>()) {
            let _ = redact(&text, cut);
        }
    }
}
