//! Perpetuo API keys (`pk_` + base62 of 32 bytes from the OS generator) and their stored form:
//! only the SHA-256 of the token, plus a short prefix and the last four characters for display.

use rand::TryRng as _;
use rand::rngs::SysRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::platform::error::ServiceError;

pub const TOKEN_PREFIX: &str = "pk_";
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 32 bytes need 43 base62 digits (62^43 > 2^256).
const ENCODED_LEN: usize = 43;

/// A freshly generated token: shown once, then only its hash is kept.
pub struct NewToken {
    pub token: String,
    pub hash: String,
    pub preview: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("preview", &self.preview).finish_non_exhaustive()
    }
}

pub fn generate() -> Result<NewToken, ServiceError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SysRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|_| ServiceError::Internal("the operating system's random generator failed".into()))?;
    let token = format!("{TOKEN_PREFIX}{}", base62(&bytes));
    Ok(NewToken { hash: hash(&token), preview: preview(&token), token })
}

/// Base62 of a big-endian number, left-padded to the fixed length.
fn base62(bytes: &[u8; 32]) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(ENCODED_LEN);
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in &mut number {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = u8::try_from(value / 62).unwrap_or(0);
            remainder = value % 62;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    while digits.len() < ENCODED_LEN {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// SHA-256 of the whole token, lower-case hex: the only stored form.
pub fn hash(token: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// `pk_abcde…wxyz`: enough to recognise a key, far too little to use it.
pub fn preview(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    let tail: String = token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head}…{tail}")
}

/// Whether a presented string has the shape of a token (cheap check before any lookup).
pub fn looks_like_token(raw: &str) -> bool {
    raw.len() == TOKEN_PREFIX.len() + ENCODED_LEN
        && raw.starts_with(TOKEN_PREFIX)
        && raw[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_have_the_documented_shape() {
        let t = generate().unwrap();
        assert!(looks_like_token(&t.token), "{}", t.token);
        assert_eq!(t.hash, hash(&t.token));
        assert_eq!(t.hash.len(), 64);
        assert!(t.preview.starts_with("pk_") && t.preview.ends_with(&t.token[t.token.len() - 4..]));
        assert!(!t.preview.contains(&t.token[8..t.token.len() - 4]));
    }

    #[test]
    fn base62_known_values() {
        assert_eq!(base62(&[0u8; 32]), "0".repeat(43));
        let mut one = [0u8; 32];
        one[31] = 61;
        assert_eq!(base62(&one), format!("{}z", "0".repeat(42)));
        one[31] = 62;
        assert_eq!(base62(&one), format!("{}10", "0".repeat(41)));
        assert_eq!(base62(&[0xff; 32]).len(), 43);
    }

    #[test]
    fn known_sha256() {
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn tokens_do_not_repeat() {
        let set: HashSet<String> = (0..1000).map(|_| generate().unwrap().token).collect();
        assert_eq!(set.len(), 1000);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(!looks_like_token("pk_short"));
        assert!(!looks_like_token(&format!("sk_{}", "a".repeat(43))));
        assert!(!looks_like_token(&format!("pk_{}!", "a".repeat(42))));
    }
}
