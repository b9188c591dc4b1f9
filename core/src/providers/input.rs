//! A provider's fields as they arrive from a form or the API, parsed into values that keep their
//! rules: nothing past this module sees a raw label, key, priority or allow-list.

use std::collections::BTreeMap;

use perpetuo_types::ProviderKind;

use super::catalog::{self, Credential};
use super::credentials;
use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;

/// Longest model allow-list, and longest name on it.
const MAX_MODELS: usize = 500;
const MAX_MODEL_NAME: usize = 200;
pub const DEFAULT_PRIORITY: i64 = 100;

/// A provider's label: 1 to 80 characters of plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let label = raw.trim();
        if label.is_empty() || label.chars().count() > 80 || label.chars().any(char::is_control) {
            return Err(ServiceError::Invalid("Give the provider a label of 1 to 80 characters.".into()));
        }
        Ok(Self(label.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A provider's API key: one line, no spaces; or, for kinds that exchange a credential for
/// tokens, the credential's JSON (see `credentials`). A secret: never `Serialize`, wiped when
/// dropped.
#[derive(Debug)]
pub struct ProviderKey {
    secret: SecretBytes,
    preview: String,
}

impl ProviderKey {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let key = raw.trim();
        if key.is_empty() {
            return Err(ServiceError::Invalid("Enter the provider's API key.".into()));
        }
        if key.len() > 1024 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ServiceError::Invalid("The API key must be a single line without spaces.".into()));
        }
        let chars: Vec<char> = key.chars().collect();
        // The last four characters, only when the key is long enough that they reveal little.
        let preview = if chars.len() < 12 { String::new() } else { chars[chars.len() - 4..].iter().collect() };
        Ok(Self { secret: SecretBytes::new(key.as_bytes().to_vec()), preview })
    }

    /// The key field of a provider of `kind`: a Vertex AI service account's JSON key, Azure's API
    /// key or Entra ID client credentials, any other kind's API key.
    pub fn parse_for(kind: ProviderKind, raw: &str, allow_private: bool) -> Result<Self, ServiceError> {
        let parsed = match catalog::of(kind).credential {
            Credential::ServiceAccount => credentials::parse_service_account(raw, allow_private)?,
            Credential::ApiKeyOrEntra if credentials::is_entra(raw) => credentials::parse_entra(raw, allow_private)?,
            Credential::ApiKeyOrAccessKey if super::aws::is_access_key(raw) => super::aws::parse_access_key(raw)?,
            Credential::ApiKey | Credential::ApiKeyOrEntra | Credential::ApiKeyOrAccessKey => return Self::parse(raw),
        };
        Ok(Self { secret: parsed.stored, preview: parsed.preview })
    }

    /// The key field of an edit: empty, absent or the masked preview keeps the stored key.
    pub fn parse_replacement(
        kind: ProviderKind,
        raw: Option<&str>,
        allow_private: bool,
    ) -> Result<Option<Self>, ServiceError> {
        match raw.map(str::trim).filter(|k| !k.is_empty() && !k.starts_with("••••")) {
            Some(key) => Self::parse_for(kind, key, allow_private).map(Some),
            None => Ok(None),
        }
    }

    pub fn expose(&self) -> &[u8] {
        self.secret.expose()
    }

    /// What the dashboard shows of it (after `••••`): a key's last four characters when it is
    /// long enough that they reveal little; a credential's key or client id's.
    pub fn last4(&self) -> String {
        self.preview.clone()
    }
}

/// The order providers are tried in: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority(i64);

impl Priority {
    pub fn parse(raw: Option<i64>) -> Result<Self, ServiceError> {
        match raw {
            None => Ok(Self(DEFAULT_PRIORITY)),
            Some(p) if (0..=1_000_000).contains(&p) => Ok(Self(p)),
            Some(_) => {
                Err(ServiceError::Invalid("Priority must be between 0 and 1000000 (lower is tried first).".into()))
            }
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The models a provider may serve: sorted, without duplicates; `None` for no allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAllowList(Option<Vec<String>>);

impl ModelAllowList {
    pub fn parse(raw: Option<Vec<String>>) -> Result<Self, ServiceError> {
        let Some(list) = raw else { return Ok(Self(None)) };
        let mut models: Vec<String> = list.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
        models.sort();
        models.dedup();
        if models.len() > MAX_MODELS
            || models.iter().any(|m| m.len() > MAX_MODEL_NAME || m.chars().any(char::is_whitespace))
        {
            return Err(ServiceError::Invalid(format!(
                "The model allow-list takes up to {MAX_MODELS} model names without spaces."
            )));
        }
        Ok(Self(if models.is_empty() { None } else { Some(models) }))
    }

    pub fn into_inner(self) -> Option<Vec<String>> {
        self.0
    }
}

/// Most aliases on one provider.
const MAX_ALIASES: usize = 200;

/// A provider's model aliases: names clients send (exact, or a prefix ending in `*`) and the model
/// the provider serves for each. Stored as `name=model` strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases(BTreeMap<String, String>);

impl Aliases {
    pub fn parse(raw: Option<BTreeMap<String, String>>) -> Result<Self, ServiceError> {
        let mut aliases = BTreeMap::new();
        for (name, model) in raw.unwrap_or_default() {
            let (name, model) = (name.trim().to_owned(), model.trim().to_owned());
            let plain = |s: &str| !s.is_empty() && s.len() <= MAX_MODEL_NAME && !s.chars().any(char::is_whitespace);
            let star_last = name.find('*').is_none_or(|at| at == name.len() - 1 && at > 0);
            if !plain(&name) || !plain(&model) || name.contains('=') || !star_last {
                return Err(ServiceError::Invalid(format!(
                    "Each alias is a model name (or a prefix ending in `*`) and the model this provider serves for it, \
                     each up to {MAX_MODEL_NAME} characters without spaces; `{name}` is not."
                )));
            }
            aliases.insert(name, model);
        }
        if aliases.len() > MAX_ALIASES {
            return Err(ServiceError::Invalid(format!("A provider takes up to {MAX_ALIASES} aliases.")));
        }
        Ok(Self(aliases))
    }

    pub fn from_stored(stored: Option<&[String]>) -> BTreeMap<String, String> {
        stored
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, model)| (name.to_owned(), model.to_owned()))
            .collect()
    }

    pub fn into_stored(self) -> Option<Vec<String>> {
        (!self.0.is_empty()).then(|| self.0.into_iter().map(|(name, model)| format!("{name}={model}")).collect())
    }
}

/// Azure OpenAI's `api-version`: a dated version (`2024-10-21`, `2025-04-01-preview`) or
/// `preview`/`latest`; only Azure providers have one. Empty means the default.
pub struct ApiVersion;

impl ApiVersion {
    /// The version used when the provider names none (Azure's latest GA data-plane version).
    pub const DEFAULT: &'static str = "2024-10-21";

    pub fn parse(kind: ProviderKind, raw: Option<&str>) -> Result<Option<String>, ServiceError> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
        if !catalog::of(kind).api_version {
            return Err(ServiceError::Invalid("An API version is only for Azure OpenAI providers.".into()));
        }
        let valid = raw.len() <= 40 && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ServiceError::Invalid(format!(
                "The API version must look like {}, 2025-04-01-preview or preview.",
                Self::DEFAULT
            )));
        }
        Ok(Some(raw.to_owned()))
    }
}

/// A cloud region: Vertex AI's location (`us-east5`, `europe-west1`, `global`; empty means
/// `global`) or Amazon Bedrock's (`us-east-1`, `eu-west-3`; empty means `us-east-1`). Only those
/// kinds have one.
pub struct Region;

impl Region {
    pub const DEFAULT: &'static str = "global";

    pub fn parse(kind: ProviderKind, raw: Option<&str>) -> Result<Option<String>, ServiceError> {
        let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
        if !catalog::of(kind).region {
            return Err(ServiceError::Invalid(
                "A region is only for Google Vertex AI and Amazon Bedrock providers.".into(),
            ));
        }
        let valid = raw.len() <= 40 && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ServiceError::Invalid(
                "The region must look like us-east5, europe-west1 or global (Vertex AI), or us-east-1 (Bedrock)."
                    .into(),
            ));
        }
        Ok(Some(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_rules() {
        assert_eq!(Label::parse("  Main  ").map(Label::into_inner).ok(), Some("Main".into()));
        assert!(Label::parse("").is_err() && Label::parse(&"x".repeat(81)).is_err());
        assert!(ProviderKey::parse("sk one").is_err() && ProviderKey::parse(" ").is_err());
        assert_eq!(ProviderKey::parse("sk-0123456789abcd").map(|k| k.last4()).ok(), Some("abcd".into()));
        assert_eq!(ProviderKey::parse("short-key").map(|k| k.last4()).ok(), Some(String::new()));
        let replace = |raw| ProviderKey::parse_replacement(ProviderKind::Openai, Some(raw), false);
        assert!(matches!(replace("••••abcd"), Ok(None)));
        assert!(matches!(replace("  "), Ok(None)));
        assert!(matches!(replace("new-key"), Ok(Some(_))));
        assert!(ProviderKey::parse_for(ProviderKind::Vertex, "sk-0123456789abcd", false).is_err());
        assert_eq!(Region::parse(ProviderKind::Vertex, Some(" us-east5 ")).ok().flatten().as_deref(), Some("us-east5"));
        assert!(Region::parse(ProviderKind::Openai, Some("us-east5")).is_err());
        assert!(Region::parse(ProviderKind::Vertex, Some("us/east")).is_err());
        for kind in ProviderKind::ALL {
            let descriptor = catalog::of(kind);
            assert_eq!(Region::parse(kind, Some("us-east-1")).is_ok(), descriptor.region, "{kind:?}");
            assert_eq!(ApiVersion::parse(kind, Some("2024-10-21")).is_ok(), descriptor.api_version, "{kind:?}");
            let api_key = ProviderKey::parse_for(kind, "sk-0123456789abcdef", false).is_ok();
            assert_eq!(api_key, descriptor.credential != Credential::ServiceAccount, "{kind:?}");
        }
        assert_eq!(Priority::parse(None).map(Priority::get).ok(), Some(DEFAULT_PRIORITY));
        assert!(Priority::parse(Some(-1)).is_err());
        let list = ModelAllowList::parse(Some(vec![" b ".into(), "a".into(), "b".into(), "".into()]));
        assert_eq!(list.map(ModelAllowList::into_inner).ok(), Some(Some(vec!["a".into(), "b".into()])));
        assert_eq!(ModelAllowList::parse(Some(vec![" ".into()])).map(ModelAllowList::into_inner).ok(), Some(None));
        assert!(ModelAllowList::parse(Some(vec!["a b".into()])).is_err());
        let aliases = |pairs: &[(&str, &str)]| {
            Aliases::parse(Some(pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()))
        };
        let ok = aliases(&[(" claude-sonnet-* ", "gpt-4o"), ("fast", "llama-3.1-8b")]).map(Aliases::into_stored);
        assert_eq!(ok.ok(), Some(Some(vec!["claude-sonnet-*=gpt-4o".into(), "fast=llama-3.1-8b".into()])));
        for bad in [[("a*b", "m")], [("*", "m")], [("a", "")], [("a=b", "m")], [("a b", "m")]] {
            assert!(aliases(&bad).is_err(), "{bad:?}");
        }
        let stored = vec!["claude-*=gpt-4o".to_owned(), "x=a=b".to_owned()];
        let back = Aliases::from_stored(Some(&stored));
        assert_eq!(back.get("claude-*").map(String::as_str), Some("gpt-4o"));
        assert_eq!(back.get("x").map(String::as_str), Some("a=b"), "a model may hold `=`");
        assert_eq!(Aliases::parse(None).map(Aliases::into_stored).ok(), Some(None));
    }
}
