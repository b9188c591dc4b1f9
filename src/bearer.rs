//! The one reading of `Authorization: Bearer <token>` for every surface (gateway keys, management
//! API tokens, the metrics token). The scheme is case-insensitive (RFC 9110, section 11.1).

use http::HeaderMap;

/// The bearer token, trimmed; `None` without an `Authorization` header in the bearer scheme.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap_or_else(|_| unreachable!()));
        headers
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_space_is_trimmed() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "  Bearer   tok  ", "bEaReR tok"] {
            assert_eq!(bearer(&headers(value)), Some("tok"), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_and_bare_tokens_are_not_bearer_tokens() {
        for value in ["Basic dXNlcjpwYXNz", "tok", "Bearertok", ""] {
            assert_eq!(bearer(&headers(value)), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
