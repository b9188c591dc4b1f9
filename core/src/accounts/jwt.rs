//! Management API tokens: HS256 JWTs signed with `JWT_SECRET`, valid one hour, naming the user and
//! the workspace. A token still needs a live membership at use (see `workspaces::authorize`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::platform::db::now_ms;
use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;

/// How long a token lives.
pub const TOKEN_TTL_SECS: i64 = 3600;
const ISSUER: &str = "perpetuo";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Workspace id.
    pub ws: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The user's token generation when issued (a sign-out everywhere voids older tokens).
    #[serde(default)]
    pub generation: u64,
}

/// Signing and verifying keys, made once from `JWT_SECRET`.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretBytes) -> Result<Self, ServiceError> {
        let encoding =
            EncodingKey::from_secret(secret.expose()).map_err(|e| ServiceError::Internal(format!("jwt key: {e}")))?;
        let decoding =
            DecodingKey::from_secret(secret.expose()).map_err(|e| ServiceError::Internal(format!("jwt key: {e}")))?;
        // Only HS256 is accepted: `alg: none` and algorithm swaps fail before any signature check.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Ok(Self { encoding, decoding, validation })
    }

    /// A token for `user_id` in `workspace_id`, and its expiry in Unix milliseconds.
    pub fn issue(&self, user_id: &str, workspace_id: &str, generation: u64) -> Result<(String, i64), ServiceError> {
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: user_id.to_owned(),
            ws: workspace_id.to_owned(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            iss: ISSUER.into(),
            generation,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Internal(format!("jwt encode: {e}")))?;
        Ok((token, claims.exp * 1000))
    }

    /// The claims of a valid token; any failure (expired, tampered, wrong algorithm) is 401.
    pub fn verify(&self, token: &str) -> Result<Claims, ServiceError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| ServiceError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretBytes::new(b"0123456789abcdef0123456789abcdef".to_vec())).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let (token, exp) = k.issue("u1", "w1", 0).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.ws.as_str()), ("u1", "w1"));
        assert_eq!(claims.exp * 1000, exp);
    }

    #[test]
    fn other_secret_is_refused() {
        let (token, _) = keys().issue("u1", "w1", 0).unwrap();
        let other = JwtKeys::new(&SecretBytes::new(b"another-secret-another-secret-xx".to_vec())).unwrap();
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn tampered_payload_is_refused() {
        let k = keys();
        let (token, _) = k.issue("u1", "w1", 0).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap().replace("\"w1\"", "\"w2\"");
        let forged = format!("{}.{}.{}", parts[0], b64.encode(payload), parts[2]);
        assert!(k.verify(&forged).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = now_ms() / 1000;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(r#"{{"sub":"u1","ws":"w1","iat":{now},"exp":{},"iss":"perpetuo"}}"#, now + 600));
        assert!(k.verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn expired_is_refused() {
        let k = keys();
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: "u1".into(),
            ws: "w1".into(),
            iat: now - 7200,
            exp: now - 1,
            iss: ISSUER.into(),
            generation: 0,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        assert!(k.verify(&token).is_err());
    }
}
