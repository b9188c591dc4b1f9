//! Types that cross the wire between the server, the browser and API clients, plus the parsers for
//! values with rules. Compiled for both `ssr` and `hydrate`; nothing here holds a secret except
//! [`CreatedApiKey::token`], which exists to be shown once.

use serde::{Deserialize, Serialize};
#[cfg(feature = "ssr")]
use surrealdb::types::SurrealValue;

/// An email address, trimmed and lower-cased, checked for a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let invalid = || "Enter a valid email address, such as name@example.com.".to_owned();
        if email.is_empty() || email.len() > 254 {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let bad_char = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '"' | ',' | ';' | '(' | ')' | '\\' | '[' | ']')
        };
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || email.chars().any(bad_char)
            || !domain.contains('.')
            || domain.starts_with(['.', '-'])
            || domain.ends_with(['.', '-'])
            || domain.contains("..")
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shortest and longest passwords accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// Checks a password's length rules; the value itself stays with the caller.
pub fn check_password_rules(raw: &str) -> Result<(), String> {
    let chars = raw.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(format!("Passwords need at least {PASSWORD_MIN_CHARS} characters."));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(format!("Passwords can have at most {PASSWORD_MAX_CHARS} characters."));
    }
    Ok(())
}

/// A workspace name: 1 to 80 characters after trimming, no control characters.
pub fn parse_workspace_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the workspace a name.".into());
    }
    if name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err("Workspace names are at most 80 characters of plain text.".into());
    }
    Ok(name.to_owned())
}

/// The signed-in user, as shown to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
}

/// A workspace, as shown to its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
}

/// What the dashboard knows about the signed-in visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub user: UserView,
    pub workspace: WorkspaceView,
    pub workspaces: Vec<WorkspaceView>,
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM` UTC, the same on server and browser.
pub fn format_ts(ms: i64) -> String {
    let (date, secs_of_day) = split_ts(ms);
    format!("{date} {:02}:{:02}", secs_of_day / 3600, (secs_of_day % 3600) / 60)
}

/// Formats Unix milliseconds as `YYYY-MM-DD` (UTC).
pub fn format_day(ms: i64) -> String {
    split_ts(ms).0
}

fn split_ts(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs_of_day)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` to Unix milliseconds at 00:00 UTC.
pub fn parse_day(raw: &str) -> Option<i64> {
    let mut parts = raw.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates such as 2025-02-31 that roll into the next month.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse("  Alice@Example.COM ").map(|e| e.0), Ok("alice@example.com".into()));
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a@.example.com",
            ".a@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn password_lengths() {
        assert!(check_password_rules("123456789").is_err());
        assert!(check_password_rules("1234567890").is_ok());
        assert!(check_password_rules(&"é".repeat(1024)).is_ok());
        assert!(check_password_rules(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn workspace_names() {
        assert_eq!(parse_workspace_name("  Team  "), Ok("Team".into()));
        assert!(parse_workspace_name("   ").is_err());
        assert!(parse_workspace_name(&"w".repeat(81)).is_err());
    }

    #[test]
    fn formats_known_timestamps() {
        assert_eq!(format_ts(0), "1970-01-01 00:00");
        assert_eq!(format_ts(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(format_day(951_782_400_000), "2000-02-29");
        assert_eq!(parse_day("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse_day("2001-02-29"), None);
        assert_eq!(parse_day("junk"), None);
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -100_000i64..200_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn email_parse_is_idempotent(local in "[a-z0-9._+-]{1,20}", domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}") {
            if let Ok(email) = Email::parse(&format!("{local}@{domain}")) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            }
        }
    }
}

/// The kinds of provider account a workspace can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
    Groq,
    Mistral,
    Deepseek,
    Openrouter,
    Together,
    Xai,
    OpenaiCompatible,
}

impl ProviderKind {
    pub const ALL: [Self; 10] = [
        Self::Openai,
        Self::Anthropic,
        Self::Gemini,
        Self::Groq,
        Self::Mistral,
        Self::Deepseek,
        Self::Openrouter,
        Self::Together,
        Self::Xai,
        Self::OpenaiCompatible,
    ];

    /// The stable identifier used in storage, the API and `kind/model` routing.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::Deepseek => "deepseek",
            Self::Openrouter => "openrouter",
            Self::Together => "together",
            Self::Xai => "xai",
            Self::OpenaiCompatible => "openai_compatible",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            format!("Unknown provider kind `{raw}`; expected one of {}.", Self::ALL.map(Self::as_str).join(", "))
        })
    }

    /// Human name for the dashboard.
    pub fn label(self) -> &'static str {
        match self {
            Self::Openai => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Gemini => "Google Gemini",
            Self::Groq => "Groq",
            Self::Mistral => "Mistral",
            Self::Deepseek => "DeepSeek",
            Self::Openrouter => "OpenRouter",
            Self::Together => "Together AI",
            Self::Xai => "xAI",
            Self::OpenaiCompatible => "OpenAI-compatible (custom URL)",
        }
    }

    /// The vendor's base URL, following its SDK's convention: OpenAI-style kinds include the
    /// version (the gateway appends `/chat/completions`); Anthropic's does not (`/v1/messages`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com/v1beta/openai"),
            Self::Groq => Some("https://api.groq.com/openai/v1"),
            Self::Mistral => Some("https://api.mistral.ai/v1"),
            Self::Deepseek => Some("https://api.deepseek.com/v1"),
            Self::Openrouter => Some("https://openrouter.ai/api/v1"),
            Self::Together => Some("https://api.together.xyz/v1"),
            Self::Xai => Some("https://api.x.ai/v1"),
            Self::OpenaiCompatible => None,
        }
    }

    /// Whether the vendor offers `/embeddings`.
    pub fn offers_embeddings(self) -> bool {
        matches!(
            self,
            Self::Openai | Self::Gemini | Self::Mistral | Self::Together | Self::OpenaiCompatible | Self::Openrouter
        )
    }

    /// Whether a provider of this kind without an allow-list serves `model`, by the vendor's
    /// model families.
    pub fn serves_family(self, model: &str) -> bool {
        let m = model.to_ascii_lowercase();
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| m.starts_with(p));
        match self {
            Self::Openai => starts(&[
                "gpt-",
                "o1",
                "o3",
                "o4",
                "chatgpt-",
                "text-embedding-",
                "davinci",
                "babbage",
                "omni-moderation",
                "codex-",
            ]),
            Self::Anthropic => starts(&["claude-"]),
            Self::Gemini => starts(&["gemini-", "gemma-", "text-embedding-004", "embedding-"]),
            Self::Groq => starts(&[
                "llama",
                "mixtral",
                "gemma2",
                "qwen",
                "deepseek-r1-distill",
                "compound",
                "openai/gpt-oss",
                "meta-llama/",
                "moonshotai/",
            ]),
            Self::Mistral => starts(&[
                "mistral-",
                "open-mistral",
                "open-mixtral",
                "codestral",
                "pixtral",
                "ministral",
                "magistral",
                "devstral",
            ]),
            Self::Deepseek => starts(&["deepseek-"]),
            Self::Xai => starts(&["grok-"]),
            // Both name models `vendor/model`.
            Self::Openrouter | Self::Together => m.contains('/'),
            Self::OpenaiCompatible => true,
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the provider's stored key last worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Not known to be bad.
    Ok,
    /// The provider answered 401/403 with this key: the user must replace it.
    Rejected,
}

/// A provider account as shown in the dashboard and the API: the key only as `••••last4`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub id: String,
    pub label: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub key_preview: String,
    pub priority: i64,
    pub enabled: bool,
    pub models: Option<Vec<String>>,
    pub key_status: KeyStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields to create a provider. `api_key` is a secret in transit only.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct NewProvider {
    pub label: String,
    pub kind: String,
    #[serde(default)]
    pub base_url: Option<String>,
    pub api_key: String,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

/// The provider key in these request types is wiped from memory when the request is dropped.
#[cfg(feature = "ssr")]
impl Drop for NewProvider {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.api_key);
    }
}

#[cfg(feature = "ssr")]
impl Drop for ProviderPatch {
    fn drop(&mut self) {
        if let Some(key) = self.api_key.as_mut() {
            zeroize::Zeroize::zeroize(key);
        }
    }
}

/// Fields to change on a provider; absent fields stay. An absent or empty `api_key` keeps the key.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ProviderPatch {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `Some(vec![])` clears the allow-list.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

/// The outcome of "Test" on a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTestResult {
    pub ok: bool,
    pub message: String,
    pub models: Vec<String>,
    pub latency_ms: u64,
}

/// Whether a key can be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

/// A Perpetuo API key as listed: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub state: KeyState,
    /// `pk_abcd…wxyz`, for recognising a key.
    pub preview: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub rate_limit_per_min: Option<u32>,
}

/// Fields to create an API key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    /// Days until it expires; none for no expiry.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Unix milliseconds; an alternative to `expires_in_days` for the API.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
}

/// The only place a token ever appears: the answer to its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    pub token: String,
}

/// A period of whole UTC days, both ends included (Unix ms at 00:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from_day: i64,
    pub to_day: i64,
}

pub const DAY_MS: i64 = 86_400_000;
/// The longest period one query may cover.
pub const MAX_PERIOD_DAYS: i64 = 400;

impl Period {
    /// The `days` days ending today (today included).
    pub fn last_days(days: i64, now_ms: i64) -> Self {
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
        Self { from_day: today - (days.max(1) - 1) * DAY_MS, to_day: today }
    }

    /// From the dashboard's or the API's fields: a preset (`today`, `7d`, `30d`) or `from`/`to`
    /// dates (`YYYY-MM-DD`); the last 30 days when nothing is given.
    pub fn parse(preset: Option<&str>, from: Option<&str>, to: Option<&str>, now_ms: i64) -> Result<Self, String> {
        fn given(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        match given(preset) {
            Some("today") => return Ok(Self::last_days(1, now_ms)),
            Some("7d") => return Ok(Self::last_days(7, now_ms)),
            Some("30d") => return Ok(Self::last_days(30, now_ms)),
            Some("custom") | None => {}
            Some(other) => return Err(format!("Unknown period `{other}`; use today, 7d, 30d or from/to dates.")),
        }
        let default = Self::last_days(30, now_ms);
        let day = |raw: Option<&str>, fallback: i64, name: &str| -> Result<i64, String> {
            match given(raw) {
                None => Ok(fallback),
                Some(raw) => parse_day(raw).ok_or_else(|| format!("`{name}` must be a date such as 2025-01-31.")),
            }
        };
        let to_day = day(to, default.to_day, "to")?;
        let from_day = day(from, to_day - 29 * DAY_MS, "from")?;
        if from_day > to_day {
            return Err("`from` must not be after `to`.".into());
        }
        if (to_day - from_day) / DAY_MS >= MAX_PERIOD_DAYS {
            return Err(format!("A period can cover at most {MAX_PERIOD_DAYS} days."));
        }
        Ok(Self { from_day, to_day })
    }
}

/// How usage is broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Model,
    Provider,
    Key,
}

impl GroupBy {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "day" => Ok(Self::Day),
            "model" => Ok(Self::Model),
            "provider" => Ok(Self::Provider),
            "key" => Ok(Self::Key),
            other => Err(format!("Unknown group_by `{other}`; use day, model, provider or key.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Key => "key",
        }
    }
}

/// Which statuses the request log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Any,
    Ok,
    Error,
    Code(u16),
}

impl StatusFilter {
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("any") => Ok(Self::Any),
            Some("ok") => Ok(Self::Ok),
            Some("error") => Ok(Self::Error),
            Some(code) => code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(Self::Code)
                .ok_or_else(|| "`status` must be ok, error or an HTTP status code.".to_owned()),
        }
    }

    pub fn as_query(self) -> String {
        match self {
            Self::Any => String::new(),
            Self::Ok => "ok".into(),
            Self::Error => "error".into(),
            Self::Code(c) => c.to_string(),
        }
    }
}

/// The request log's filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFilter {
    pub period: Period,
    pub key: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: StatusFilter,
}

/// Totals for a period. `cost_nanos` is `None` when no request in it had a known price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub from_day: i64,
    pub to_day: i64,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub unpriced_requests: i64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub ttft_p50_ms: Option<i64>,
}

/// Totals of one group (a day, a model, a provider or a key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageGroup {
    pub key: String,
    pub label: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub unpriced_requests: i64,
}

/// One bar segment of a chart: a day and a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub day: i64,
    pub label: String,
    pub requests: i64,
    pub cost_nanos: i64,
}

/// One gateway request in the log (read straight from the `usage` table on the server; the key's
/// name is filled in afterwards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(SurrealValue))]
pub struct RequestRow {
    pub ts: i64,
    pub request_id: String,
    pub key_id: String,
    #[cfg_attr(feature = "ssr", surreal(default))]
    pub key_name: String,
    pub provider_id: Option<String>,
    pub provider_label: Option<String>,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub status: i64,
    pub ok: bool,
    pub error_class: Option<String>,
    pub attempts: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
}

/// A page of the request log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPage {
    pub data: Vec<RequestRow>,
    /// Records matching the filters (all pages).
    pub total: i64,
    pub next_cursor: Option<String>,
}

/// Dollars from billionths of a dollar, or "unknown".
pub fn format_cost(nanos: Option<i64>) -> String {
    match nanos {
        None => "unknown".into(),
        Some(n) => {
            let dollars = n as f64 / 1e9;
            if dollars == 0.0 {
                "$0".into()
            } else if dollars < 0.01 {
                format!("${dollars:.6}")
            } else {
                format!("${dollars:.2}")
            }
        }
    }
}

#[cfg(test)]
mod period_tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000; // 2023-11-14 22:13 UTC

    #[test]
    fn presets_and_custom_ranges() {
        let today = parse_day("2023-11-14").unwrap();
        assert_eq!(Period::parse(Some("today"), None, None, NOW), Ok(Period { from_day: today, to_day: today }));
        assert_eq!(Period::parse(Some("7d"), None, None, NOW).unwrap().from_day, today - 6 * DAY_MS);
        assert_eq!(Period::parse(None, None, None, NOW).unwrap().from_day, today - 29 * DAY_MS);
        let custom = Period::parse(Some("custom"), Some("2023-01-01"), Some("2023-01-31"), NOW).unwrap();
        assert_eq!((custom.to_day - custom.from_day) / DAY_MS, 30);
        assert!(Period::parse(None, Some("2023-02-01"), Some("2023-01-01"), NOW).is_err());
        assert!(Period::parse(None, Some("2020-01-01"), Some("2023-01-01"), NOW).is_err());
        assert!(Period::parse(Some("forever"), None, None, NOW).is_err());
        assert!(Period::parse(None, Some("yesterday"), None, NOW).is_err());
    }

    #[test]
    fn status_filters_and_costs() {
        assert_eq!(StatusFilter::parse(Some("error")), Ok(StatusFilter::Error));
        assert_eq!(StatusFilter::parse(Some("429")), Ok(StatusFilter::Code(429)));
        assert!(StatusFilter::parse(Some("99")).is_err());
        assert_eq!(format_cost(None), "unknown");
        assert_eq!(format_cost(Some(5_850)), "$0.000006");
        assert_eq!(format_cost(Some(1_234_000_000)), "$1.23");
    }
}

/// A workspace's own price for a model, in dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(SurrealValue))]
pub struct PriceOverride {
    pub kind: String,
    pub model: String,
    pub input_per_million: f64,
    pub output_per_million: f64,
    pub updated_at: i64,
}

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
