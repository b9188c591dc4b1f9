//! Sealing provider keys at rest: AES-256-GCM, a fresh random 96-bit nonce per seal, the owning
//! workspace and provider ids as associated data, and a versioned, key-identified stored form so
//! the encryption key can be rotated.
//!
//! Stored form: `v1.<kid>.<base64url(nonce || ciphertext || tag)>`, where `kid` is the first eight
//! hex digits of SHA-256 over the key (it names the key, it cannot recover it).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Nonce, Payload};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::secret::{Secret32, SecretBytes};

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// Why a sealed value could not be made or opened. Carries no key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was made with key {0}, which is neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS")]
    UnknownKey(String),
    #[error("sealed value failed authentication (tampered, or bound to another record)")]
    Authentication,
    #[error("the operating system's random generator failed")]
    Random,
}

struct KeySlot {
    kid: String,
    cipher: Aes256Gcm,
}

impl KeySlot {
    fn new(key: &Secret32) -> Self {
        let digest: [u8; 32] = Sha256::digest(key.expose()).into();
        let kid = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let cipher = Aes256Gcm::new(&(*key.expose()).into());
        Self { kid, cipher }
    }
}

/// The process's cipher: seals with the current key, opens with the current or the previous one.
pub struct Cipher {
    current: KeySlot,
    previous: Option<KeySlot>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher").field("kid", &self.current.kid).finish_non_exhaustive()
    }
}

/// What a sealed provider key is bound to: a copy in another record fails to open.
pub fn provider_aad(workspace_id: &str, provider_id: &str) -> Vec<u8> {
    format!("perpetuo/provider-key/{VERSION}/{workspace_id}/{provider_id}").into_bytes()
}

/// What a call's sealed captured bodies are bound to: a copy in another record fails to open.
pub fn capture_aad(workspace_id: &str, request_id: &str) -> Vec<u8> {
    format!("perpetuo/capture/{VERSION}/{workspace_id}/{request_id}").into_bytes()
}

impl Cipher {
    pub fn new(current: &Secret32, previous: Option<&Secret32>) -> Self {
        Self { current: KeySlot::new(current), previous: previous.map(KeySlot::new) }
    }

    /// The id of the key new seals are made with.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let nonce = Nonce::<Aes256Gcm>::try_generate().map_err(|_| CryptoError::Random)?;
        let ciphertext = self
            .current
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::Authentication)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&ciphertext);
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob);
        Ok(format!("{VERSION}.{}.{body}", self.current.kid))
    }

    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let slot = if kid == self.current.kid {
            &self.current
        } else {
            match &self.previous {
                Some(previous) if previous.kid == kid => previous,
                _ => return Err(CryptoError::UnknownKey(kid.to_owned())),
            }
        };
        let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        let (nonce, ciphertext) = blob.split_at_checked(NONCE_LEN).ok_or(CryptoError::Malformed)?;
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let plaintext = Zeroizing::new(
            slot.cipher.decrypt(&nonce, Payload { msg: ciphertext, aad }).map_err(|_| CryptoError::Authentication)?,
        );
        Ok(SecretBytes::new(plaintext.to_vec()))
    }

    /// Whether a stored value was sealed with the current key (rotation skips those).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) == Some(self.current.kid.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn key(byte: u8) -> Secret32 {
        Secret32::new([byte; 32])
    }

    #[test]
    fn round_trip() {
        let cipher = Cipher::new(&key(1), None);
        let aad = provider_aad("ws1", "p1");
        let sealed = cipher.seal(b"sk-secret", &aad).unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(cipher.open(&sealed, &aad).unwrap().expose(), b"sk-secret");
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let cipher = Cipher::new(&key(1), None);
        let aad = provider_aad("ws1", "p1");
        let sealed = cipher.seal(b"sk-secret", &aad).unwrap();
        let (head, body) = sealed.rsplit_once('.').unwrap();
        let mut blob = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..blob.len() {
            blob[i] ^= 0x01;
            let forged = format!("{head}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&blob));
            assert_eq!(cipher.open(&forged, &aad), Err(CryptoError::Authentication), "byte {i}");
            blob[i] ^= 0x01;
        }
        assert_eq!(cipher.open("v1.zz", &aad), Err(CryptoError::Malformed));
        assert_eq!(cipher.open("garbage", &aad), Err(CryptoError::Malformed));
    }

    #[test]
    fn wrong_associated_data_fails() {
        let cipher = Cipher::new(&key(1), None);
        let sealed = cipher.seal(b"sk-secret", &provider_aad("ws1", "p1")).unwrap();
        assert_eq!(cipher.open(&sealed, &provider_aad("ws2", "p1")), Err(CryptoError::Authentication));
        assert_eq!(cipher.open(&sealed, &provider_aad("ws1", "p2")), Err(CryptoError::Authentication));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = Cipher::new(&key(1), None).seal(b"sk-secret", b"aad").unwrap();
        let other = Cipher::new(&key(2), None);
        assert!(matches!(other.open(&sealed, b"aad"), Err(CryptoError::UnknownKey(_))));
        // Same key id forged onto another key's seal still fails authentication.
        let forged = sealed.replacen(Cipher::new(&key(1), None).current_kid(), other.current_kid(), 1);
        assert_eq!(other.open(&forged, b"aad"), Err(CryptoError::Authentication));
    }

    #[test]
    fn rotation_opens_with_previous_and_reseals_with_current() {
        let old = Cipher::new(&key(1), None);
        let sealed_old = old.seal(b"sk-secret", b"aad").unwrap();
        let rotated = Cipher::new(&key(2), Some(&key(1)));
        assert!(!rotated.is_current(&sealed_old));
        let plain = rotated.open(&sealed_old, b"aad").unwrap();
        let resealed = rotated.seal(plain.expose(), b"aad").unwrap();
        assert!(rotated.is_current(&resealed));
        assert_eq!(Cipher::new(&key(2), None).open(&resealed, b"aad").unwrap().expose(), b"sk-secret");
    }

    #[test]
    fn nonces_are_unique() {
        let cipher = Cipher::new(&key(1), None);
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            let sealed = cipher.seal(b"x", b"aad").unwrap();
            let body = sealed.rsplit('.').next().unwrap();
            let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap();
            assert!(seen.insert(blob[..NONCE_LEN].to_vec()), "nonce repeated");
        }
    }

    proptest! {
        #[test]
        fn round_trip_any_input(msg in proptest::collection::vec(any::<u8>(), 0..512), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let cipher = Cipher::new(&key(9), None);
            let sealed = cipher.seal(&msg, &aad).unwrap();
            let opened = cipher.open(&sealed, &aad).unwrap();
            prop_assert_eq!(opened.expose(), &msg[..]);
        }
    }
}
