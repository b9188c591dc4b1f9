//! AWS credentials for Amazon Bedrock: an IAM access key (with a session token for temporary
//! credentials), each request signed with Signature Version 4 by AWS's own signer (`aws-sigv4`,
//! the canonical request exactly as AWS builds it: double-encoded paths, sorted headers, the
//! body's hash), or a Bedrock API key sent as a bearer token. The stored "key" of an IAM-signed
//! provider is the credential's JSON, sealed like any key; the signer holds it opened, never
//! prints it, and signs under the provider's region with the service name `bedrock` (Bedrock's
//! runtime host is `bedrock-runtime`, its signing name is not).

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};

use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;

/// The name Bedrock's requests are signed for (both the runtime and the control plane).
pub const SERVICE: &str = "bedrock";
/// The longest credential JSON accepted.
const MAX_CREDENTIAL: usize = 8 * 1024;

/// An IAM access key as pasted and stored. A secret: never logged.
#[derive(Clone, Serialize, Deserialize)]
struct AccessKey {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

/// Whether a Bedrock key field holds an IAM access key (JSON) rather than a Bedrock API key.
pub fn is_access_key(raw: &str) -> bool {
    raw.trim_start().starts_with('{')
}

/// An IAM access key as pasted: `{"access_key_id", "secret_access_key"}` (and `session_token`
/// for temporary credentials), checked and kept in canonical form, with the last four characters
/// of the key id for the dashboard.
pub fn parse_access_key(raw: &str) -> Result<super::credentials::Parsed, ServiceError> {
    let how = "For IAM credentials, enter {\"access_key_id\": \"AKIA…\", \"secret_access_key\": \"…\"} (and \
               \"session_token\" for temporary ones); otherwise a Bedrock API key.";
    let invalid = || ServiceError::Invalid(how.to_owned());
    if raw.len() > MAX_CREDENTIAL {
        return Err(invalid());
    }
    let key: AccessKey = serde_json::from_str(raw.trim()).map_err(|_| invalid())?;
    let plain = |v: &str, max: usize| {
        !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    let id_ok = key.access_key_id.len() >= 16 && key.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !id_ok || !plain(&key.secret_access_key, 128) || !key.session_token.as_deref().is_none_or(|t| plain(t, 4096)) {
        return Err(invalid());
    }
    let id = &key.access_key_id;
    let preview = id[id.len() - 4..].to_owned();
    let stored = serde_json::to_vec(&key).map_err(|e| ServiceError::Internal(format!("credential: {e}")))?;
    Ok(super::credentials::Parsed { stored: SecretBytes::new(stored), preview })
}

/// Signs requests with a provider's IAM access key in its region.
pub struct Signer {
    key: AccessKey,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("region", &self.region).finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of a stored access key, for `region`.
    pub fn open(stored: &SecretBytes, region: &str) -> Result<Self, ServiceError> {
        let key = serde_json::from_slice(stored.expose())
            .map_err(|_| ServiceError::Internal("stored AWS access key is unreadable".into()))?;
        Ok(Self { key, region: region.to_owned() })
    }

    /// Adds the signature headers (`authorization`, `x-amz-date`, `x-amz-security-token`) to a
    /// request about to be sent: `uri` as it goes on the wire (already percent-encoded), its
    /// headers as they are now (all of them are signed), its whole body.
    pub fn sign(&self, method: &str, uri: &str, headers: &mut http::HeaderMap, body: &[u8]) -> Result<(), String> {
        self.sign_at(method, uri, headers, body, SystemTime::now(), SERVICE)
    }

    fn sign_at(
        &self,
        method: &str,
        uri: &str,
        headers: &mut http::HeaderMap,
        body: &[u8],
        time: SystemTime,
        service: &str,
    ) -> Result<(), String> {
        let credentials = aws_credential_types::Credentials::new(
            &self.key.access_key_id,
            &self.key.secret_access_key,
            self.key.session_token.clone(),
            None,
            "perpetuo",
        );
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signed: Vec<(String, String)> = {
            let pairs = headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
            let request =
                SignableRequest::new(method, uri, pairs, SignableBody::Bytes(body)).map_err(|e| e.to_string())?;
            let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
            instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
        };
        for (name, value) in signed {
            let name = http::HeaderName::try_from(name).map_err(|e| e.to_string())?;
            let mut value = http::HeaderValue::try_from(value).map_err(|e| e.to_string())?;
            value.set_sensitive(name == http::header::AUTHORIZATION || name.as_str() == "x-amz-security-token");
            headers.insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published signing test suite (the `aws-signing-test-suite` of the CRT): its example
    /// credentials, time and expected signatures.
    const SUITE_TIME: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z
    const SUITE_KEY: &str =
        r#"{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}"#;

    fn signed(key: &str, method: &str, uri: &str, body: &[u8]) -> http::HeaderMap {
        // The suite's key id is shorter than a real one: opened as stored, not as entered.
        let signer = Signer::open(&SecretBytes::new(key.as_bytes().to_vec()), "us-east-1");
        let mut headers = http::HeaderMap::new();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(SUITE_TIME);
        let result = signer
            .and_then(|s| s.sign_at(method, uri, &mut headers, body, time, "service").map_err(ServiceError::Internal));
        assert!(result.is_ok(), "{:?}", result.err().map(|e| e.to_string()));
        headers
    }

    fn signature(headers: &http::HeaderMap) -> &str {
        let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        auth.rsplit("Signature=").next().unwrap_or_default()
    }

    #[test]
    fn the_signer_passes_aws_test_vectors() {
        // post-vanilla
        let headers = signed(SUITE_KEY, "POST", "https://example.amazonaws.com/", b"");
        assert_eq!(signature(&headers), "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
        assert_eq!(headers.get("x-amz-date").and_then(|v| v.to_str().ok()), Some("20150830T123600Z"));
        assert!(headers.get(http::header::AUTHORIZATION).is_some_and(http::HeaderValue::is_sensitive));
        // get-vanilla-with-session-token
        let with_token = r#"{"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session_token": "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"}"#;
        let headers = signed(with_token, "GET", "https://example.amazonaws.com/", b"");
        assert_eq!(signature(&headers), "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
        assert!(headers.get("x-amz-security-token").is_some());
    }

    #[test]
    fn access_keys_are_checked_when_entered() {
        assert!(is_access_key(" {\"access_key_id\": 1}") && !is_access_key("ABSKQmVkcm9ja0FQSUtleS1"));
        let entered = r#"{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#;
        let parsed = parse_access_key(entered).map(|p| p.preview);
        assert_eq!(parsed.ok().as_deref(), Some("MPLE"));
        assert!(parse_access_key(SUITE_KEY).is_err(), "an AWS key id has at least 16 characters");
        assert!(parse_access_key(r#"{"access_key_id": "AKID", "secret_access_key": "s"}"#).is_err());
        assert!(parse_access_key(r#"{"access_key_id": "AKIDEXAMPLE12345"}"#).is_err());
        assert!(parse_access_key(r#"{"access_key_id": "AKIDEXAMPLE12345", "secret_access_key": "a b"}"#).is_err());
    }
}
