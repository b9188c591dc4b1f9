//! Limits in tokens and in flight on the wire: what an owner sets for the workspace, an API key
//! or a provider (its share of its account's quota), and what a provider itself last said about
//! its own limits.

use serde::{Deserialize, Serialize};

/// What a limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum LimitScope {
    /// Every call of the workspace, whatever its key.
    Workspace,
    /// The calls made with one API key (its id).
    Key(String),
    /// The calls sent to one provider (its id): a share of the provider account's quota.
    Provider(String),
    /// Not applied to calls: what every API key created from now on gets as its own limits
    /// (members' keys included), set by an owner.
    NewKeys,
}

impl LimitScope {
    /// `workspace`, `key:<id>`, `provider:<id>` or `new_keys`: the scope as forms and the store
    /// write it.
    pub fn field(&self) -> String {
        match self {
            Self::Workspace => "workspace".into(),
            Self::Key(id) => format!("key:{id}"),
            Self::Provider(id) => format!("provider:{id}"),
            Self::NewKeys => "new_keys".into(),
        }
    }

    /// The scope a form or the store wrote (anything else is the workspace).
    pub fn parse_field(raw: &str) -> Self {
        if let Some(id) = raw.strip_prefix("key:") {
            Self::Key(id.to_owned())
        } else if let Some(id) = raw.strip_prefix("provider:") {
            Self::Provider(id.to_owned())
        } else if raw == "new_keys" {
            Self::NewKeys
        } else {
            Self::Workspace
        }
    }
}

/// The most a limit may be: a billion tokens a minute, or a hundred thousand calls at once.
pub const MAX_TOKENS_PER_MIN: u64 = 1_000_000_000;
pub const MAX_IN_FLIGHT: u32 = 100_000;

/// Limits as the owner sets them: at least one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitInput {
    /// Prompt tokens a minute (as estimated on the high side, then as counted).
    #[serde(default)]
    pub input_tokens_per_min: Option<u64>,
    /// Output tokens a minute (the most a call may write, then what it wrote).
    #[serde(default)]
    pub output_tokens_per_min: Option<u64>,
    /// Input and output tokens together a minute.
    #[serde(default)]
    pub tokens_per_min: Option<u64>,
    /// Calls in flight at once (a stream counts until it ends).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

impl LimitInput {
    /// The input checked: each limit at least 1 and at most its maximum, and at least one set.
    pub fn check(&self) -> Result<Self, String> {
        for (name, value) in [
            ("input tokens a minute", self.input_tokens_per_min),
            ("output tokens a minute", self.output_tokens_per_min),
            ("tokens a minute", self.tokens_per_min),
        ] {
            if let Some(v) = value
                && !(1..=MAX_TOKENS_PER_MIN).contains(&v)
            {
                return Err(format!("The limit of {name} must be from 1 to {MAX_TOKENS_PER_MIN}."));
            }
        }
        if let Some(n) = self.max_in_flight
            && !(1..=MAX_IN_FLIGHT).contains(&n)
        {
            return Err(format!("The limit of calls in flight must be from 1 to {MAX_IN_FLIGHT}."));
        }
        if self.is_empty() {
            return Err("Set at least one limit: input, output or total tokens a minute, or calls in flight.".into());
        }
        Ok(*self)
    }

    pub fn is_empty(&self) -> bool {
        self.input_tokens_per_min.is_none()
            && self.output_tokens_per_min.is_none()
            && self.tokens_per_min.is_none()
            && self.max_in_flight.is_none()
    }

    /// The limits in words: `10000 input tokens/min, 4 in flight`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.input_tokens_per_min {
            parts.push(format!("{v} input tokens/min"));
        }
        if let Some(v) = self.output_tokens_per_min {
            parts.push(format!("{v} output tokens/min"));
        }
        if let Some(v) = self.tokens_per_min {
            parts.push(format!("{v} tokens/min"));
        }
        if let Some(v) = self.max_in_flight {
            parts.push(format!("{v} in flight"));
        }
        if parts.is_empty() { "None".into() } else { parts.join(", ") }
    }
}

/// A limit as set, with what it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitView {
    pub scope: LimitScope,
    /// The key's or provider's name, for theirs.
    pub name: Option<String>,
    #[serde(flatten)]
    pub limits: LimitInput,
    /// Calls in flight under it on this instance now (with a concurrency limit).
    pub in_flight_here: u32,
}

/// What a provider last said about its own rate limits (its `x-ratelimit-*` or
/// `anthropic-ratelimit-*` headers), on the instance that answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPressure {
    pub requests_limit: Option<u64>,
    pub requests_remaining: Option<u64>,
    pub tokens_limit: Option<u64>,
    pub tokens_remaining: Option<u64>,
    /// Unix milliseconds when it was heard.
    pub seen_at: i64,
    /// While the provider said it is nearly out (or answered 429): no call goes to it until
    /// then (Unix milliseconds), while another candidate can serve.
    pub resting_until: Option<i64>,
    /// Why it rests, in words.
    pub reason: Option<String>,
}
