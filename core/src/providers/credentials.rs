//! Credentials that are exchanged for short-lived bearer tokens: a Google service account's JSON
//! key (Vertex AI: an RS256-signed JWT assertion exchanged at the key's `token_uri`) and a
//! Microsoft Entra ID app's client credentials (Azure OpenAI: `client_credentials` at the
//! tenant's token endpoint). The stored "key" of such a provider is the credential's JSON, sealed
//! like any key; a [`TokenSource`] holds the current token and mints a new one shortly before it
//! expires, once for all the calls waiting on it. Token exchanges go through the management
//! client, whose resolver refuses private and metadata addresses like every upstream call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::address::BaseUrl;
use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;

/// Google's token endpoint, when a key names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Entra ID's public cloud, when the credential names no other authority.
const ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";
const AZURE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// The longest credential JSON accepted (a service account key is about 2.3 KB).
const MAX_CREDENTIAL: usize = 16 * 1024;
/// The most of a token endpoint's answer read, and how long an exchange may take.
const TOKEN_ANSWER_CAP: usize = 64 * 1024;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// A Google service account's JSON key: the fields Perpetuo uses. A secret: never logged.
#[derive(Clone, Serialize, Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_uri: Option<String>,
}

/// An Entra ID app registration's client credentials. A secret: never logged.
#[derive(Clone, Serialize, Deserialize)]
struct EntraApp {
    tenant_id: String,
    client_id: String,
    client_secret: String,
    /// Another cloud's authority (`https://login.microsoftonline.us`) or a test's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authority_host: Option<String>,
}

/// A credential as stored: its canonical JSON, and the characters the dashboard may show.
pub struct Parsed {
    pub stored: SecretBytes,
    pub preview: String,
}

fn invalid(message: &str) -> ServiceError {
    ServiceError::Invalid(message.to_owned())
}

fn plain(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !value.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn last4(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 8 { String::new() } else { chars[chars.len() - 4..].iter().collect() }
}

/// A service account's JSON key as pasted: checked (the private key must be an RSA key, the
/// token endpoint an allowed URL) and kept in canonical form.
pub fn parse_service_account(raw: &str, allow_private: bool) -> Result<Parsed, ServiceError> {
    let how = "Paste the service account's JSON key (IAM & Admin > Service accounts > Keys > Add key > JSON).";
    if raw.len() > MAX_CREDENTIAL {
        return Err(invalid(how));
    }
    let mut account: ServiceAccount = serde_json::from_str(raw.trim()).map_err(|_| invalid(how))?;
    if account.kind.as_deref().is_some_and(|k| k != "service_account") {
        return Err(invalid("This JSON key is not a service account's (its `type` must be `service_account`)."));
    }
    if !plain(&account.client_email, 320) || !plain(&account.project_id, 100) {
        return Err(invalid("The service account key needs its `client_email` and `project_id`."));
    }
    jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
        .map_err(|_| invalid("The service account key's `private_key` is not an RSA private key in PEM form."))?;
    let token_uri = account.token_uri.take().unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
    account.token_uri = Some(BaseUrl::parse(&token_uri, allow_private)?.as_str().to_owned());
    let preview = last4(account.private_key_id.as_deref().unwrap_or_default());
    let stored = serde_json::to_vec(&account).map_err(|e| ServiceError::Internal(format!("credential: {e}")))?;
    Ok(Parsed { stored: SecretBytes::new(stored), preview })
}

/// Whether an Azure key field holds Entra ID client credentials rather than an API key.
pub fn is_entra(raw: &str) -> bool {
    raw.trim_start().starts_with('{')
}

/// Entra ID client credentials as pasted: `{"tenant_id", "client_id", "client_secret"}` (and
/// optionally `authority_host`), checked and kept in canonical form.
pub fn parse_entra(raw: &str, allow_private: bool) -> Result<Parsed, ServiceError> {
    let how = "For Microsoft Entra ID, enter {\"tenant_id\": \"…\", \"client_id\": \"…\", \"client_secret\": \"…\"}; otherwise the resource's API key.";
    if raw.len() > MAX_CREDENTIAL {
        return Err(invalid(how));
    }
    let mut app: EntraApp = serde_json::from_str(raw.trim()).map_err(|_| invalid(how))?;
    let tenant_ok = plain(&app.tenant_id, 100)
        && app.tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !tenant_ok || !plain(&app.client_id, 100) || !plain(&app.client_secret, 1024) {
        return Err(invalid(how));
    }
    if let Some(host) = app.authority_host.take() {
        app.authority_host = Some(BaseUrl::parse(&host, allow_private)?.as_str().to_owned());
    }
    let preview = last4(&app.client_id);
    let stored = serde_json::to_vec(&app).map_err(|e| ServiceError::Internal(format!("credential: {e}")))?;
    Ok(Parsed { stored: SecretBytes::new(stored), preview })
}

/// The project a stored service account key belongs to.
pub fn project_of(stored: &SecretBytes) -> Option<String> {
    serde_json::from_slice::<ServiceAccount>(stored.expose()).ok().map(|a| a.project_id)
}

/// How a token is obtained.
enum Grant {
    /// A JWT assertion signed with the service account's key (RFC 7523).
    ServiceAccount { email: String, key_id: Option<String>, key: jsonwebtoken::EncodingKey, token_uri: String },
    /// OAuth 2.0 client credentials.
    ClientSecret { token_url: String, client_id: String, secret: SecretBytes },
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The issuer refused the credential (what it said, scrubbed): the user must fix it.
    Refused(String),
    /// The issuer could not be reached or answered nonsense: another try may work.
    Unavailable(String),
}

struct Token {
    header: HeaderValue,
    fresh_until: Instant,
}

/// A provider's bearer tokens: the current one, and the right to mint the next.
pub struct TokenSource {
    grant: Grant,
    current: Mutex<Option<Token>>,
    minting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

/// How long a token that lives `lifetime` is used: until a fifth of its life (at most five
/// minutes) is left, so a call never leaves with a token about to expire.
pub fn fresh_for(lifetime: Duration) -> Duration {
    lifetime.saturating_sub((lifetime / 5).min(Duration::from_secs(300)))
}

impl TokenSource {
    /// A source for a Vertex AI provider, whose stored key is a service account's.
    pub fn open_service_account(stored: &SecretBytes) -> Result<Self, ServiceError> {
        let account: ServiceAccount = serde_json::from_slice(stored.expose())
            .map_err(|_| ServiceError::Internal("stored service account key is unreadable".into()))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| ServiceError::Internal("stored service account key is unreadable".into()))?;
        let grant = Grant::ServiceAccount {
            email: account.client_email,
            key_id: account.private_key_id,
            key,
            token_uri: account.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
        };
        Ok(Self::new(grant))
    }

    /// A source for an Azure provider whose stored key is Entra ID client credentials.
    pub fn open_entra(stored: &SecretBytes) -> Result<Self, ServiceError> {
        let app: EntraApp = serde_json::from_slice(stored.expose())
            .map_err(|_| ServiceError::Internal("stored Entra ID credential is unreadable".into()))?;
        let authority = app.authority_host.as_deref().unwrap_or(ENTRA_AUTHORITY).trim_end_matches('/');
        let token_url = format!("{authority}/{}/oauth2/v2.0/token", app.tenant_id);
        let secret = SecretBytes::new(app.client_secret.clone().into_bytes());
        Ok(Self::new(Grant::ClientSecret { token_url, client_id: app.client_id, secret }))
    }

    fn new(grant: Grant) -> Self {
        Self { grant, current: Mutex::new(None), minting: tokio::sync::Mutex::new(()) }
    }

    fn cached(&self) -> Option<HeaderValue> {
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.as_ref().filter(|t| Instant::now() < t.fresh_until).map(|t| t.header.clone())
    }

    /// The `Authorization` value for a call: the current token while it is fresh, else a new one
    /// (minted once however many calls wait for it).
    pub async fn bearer(&self, http: &reqwest::Client) -> Result<HeaderValue, TokenError> {
        if let Some(header) = self.cached() {
            return Ok(header);
        }
        let _minting = self.minting.lock().await;
        if let Some(header) = self.cached() {
            return Ok(header);
        }
        let (token, lifetime) = self.exchange(http).await?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| TokenError::Unavailable("the token endpoint answered an unusable token".into()))?;
        header.set_sensitive(true);
        let fresh_until = Instant::now() + fresh_for(lifetime);
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Token { header: header.clone(), fresh_until });
        Ok(header)
    }

    /// The provider refused `stale` (revoked, or expired early): the next call mints a new one.
    pub fn forget(&self, stale: &HeaderValue) {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|t| t.header == stale) {
            *current = None;
        }
    }

    async fn exchange(&self, http: &reqwest::Client) -> Result<(String, Duration), TokenError> {
        let (url, form): (&str, Vec<(&str, String)>) = match &self.grant {
            Grant::ServiceAccount { email, key_id, key, token_uri } => {
                let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
                let claims = serde_json::json!({"iss": email, "scope": GOOGLE_SCOPE, "aud": token_uri,
                    "iat": now, "exp": now + 3600});
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid.clone_from(key_id);
                let assertion = jsonwebtoken::encode(&header, &claims, key)
                    .map_err(|_| TokenError::Refused("the service account key could not sign".into()))?;
                let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned();
                (token_uri, vec![("grant_type", grant), ("assertion", assertion)])
            }
            Grant::ClientSecret { token_url, client_id, secret } => (
                token_url,
                vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", secret.expose_str().unwrap_or_default().to_owned()),
                    ("scope", AZURE_SCOPE.to_owned()),
                ],
            ),
        };
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let sent = http.post(url).form(&form).timeout(EXCHANGE_TIMEOUT).send().await;
        let response = sent.map_err(|e| TokenError::Unavailable(super::address::describe_transport_error(&e)))?;
        let status = response.status();
        let body = super::body::read_reqwest(response, TOKEN_ANSWER_CAP, EXCHANGE_TIMEOUT, deadline)
            .await
            .map_err(|_| TokenError::Unavailable("the token endpoint's answer was cut or too large".into()))?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let said = json
                .get("error_description")
                .or_else(|| json.get("error"))
                .and_then(|v| v.as_str())
                .unwrap_or("no reason given");
            let said: String = said.chars().filter(|c| !c.is_control()).take(200).collect();
            let message = format!("the token endpoint refused the credential ({}): {said}", status.as_u16());
            return Err(if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS {
                TokenError::Refused(message)
            } else {
                TokenError::Unavailable(message)
            });
        }
        let token = json.get("access_token").and_then(|v| v.as_str()).filter(|t| !t.is_empty());
        let lifetime = json
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .unwrap_or(3600)
            .clamp(1, 24 * 3600);
        match token {
            Some(token) => Ok((token.to_owned(), Duration::from_secs(lifetime))),
            None => Err(TokenError::Unavailable("the token endpoint answered no access_token".into())),
        }
    }
}

/// The token sources of opened providers, kept across re-opens (a provider's cache entry is
/// rebuilt on every change in its workspace, and the "Test" button opens its own; the token need
/// not be minted again): by provider id, with a digest of the stored credential, so a new
/// credential gets a new source. At most [`MAX_SOURCES`] are kept (past it the map starts over).
#[derive(Default)]
pub struct Sources(Mutex<std::collections::HashMap<String, Held>>);

/// A source and the digest of the credential it was opened from.
type Held = ([u8; 32], Arc<TokenSource>);

const MAX_SOURCES: usize = 10_000;

impl Sources {
    pub fn get_or_open(
        &self,
        provider: &str,
        stored: &SecretBytes,
        open: impl FnOnce() -> Result<TokenSource, ServiceError>,
    ) -> Result<Arc<TokenSource>, ServiceError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(stored.expose()).into();
        let mut sources = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, source)) = sources.get(provider)
            && *seen == digest
        {
            return Ok(Arc::clone(source));
        }
        let source = Arc::new(open()?);
        if sources.len() >= MAX_SOURCES {
            sources.clear();
        }
        sources.insert(provider.to_owned(), (digest, Arc::clone(&source)));
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_before_they_expire() {
        assert_eq!(fresh_for(Duration::from_secs(3600)), Duration::from_secs(3300));
        assert_eq!(fresh_for(Duration::from_secs(100)), Duration::from_secs(80));
        assert_eq!(fresh_for(Duration::from_secs(1)), Duration::from_millis(800));
    }

    #[test]
    fn credentials_are_checked_when_entered() {
        assert!(parse_service_account("sk-not-json", false).is_err());
        let no_key = r#"{"type":"service_account","project_id":"p","client_email":"a@p.iam.gserviceaccount.com","private_key":"nope"}"#;
        let error = parse_service_account(no_key, false).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("RSA private key"), "{error}");
        let user = r#"{"type":"authorized_user","project_id":"p","client_email":"a","private_key":"x"}"#;
        assert!(parse_service_account(user, false).is_err());
        assert!(is_entra(" {\"tenant_id\":1}") && !is_entra("abc"));
        let ok = parse_entra(
            r#"{"tenant_id":"contoso.onmicrosoft.com","client_id":"0000-1111-2222","client_secret":"s3cr3t"}"#,
            false,
        );
        assert_eq!(ok.map(|p| p.preview).ok(), Some("2222".to_owned()));
        assert!(parse_entra(r#"{"tenant_id":"a/b","client_id":"c","client_secret":"s"}"#, false).is_err());
        let private = r#"{"tenant_id":"t","client_id":"c","client_secret":"s","authority_host":"http://10.0.0.1"}"#;
        assert!(parse_entra(private, false).is_err(), "a private authority needs ALLOW_PRIVATE_UPSTREAMS");
    }
}
