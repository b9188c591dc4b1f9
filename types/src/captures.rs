//! Body capture on the wire: a workspace's policy, a key's own choice, and one call's captured
//! bodies as the call page and the management API show them.

use serde::{Deserialize, Serialize};

use crate::RequestRow;

/// The most days captured bodies may be kept, and the default.
pub const MAX_CAPTURE_RETENTION_DAYS: u16 = 90;
pub const DEFAULT_CAPTURE_RETENTION_DAYS: u16 = 7;

/// A workspace's body capture: off by default. When on, `sample_percent` of its calls (1 to 100)
/// have their request and response bodies kept for `retention_days` (1 to 90).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturePolicy {
    pub enabled: bool,
    pub sample_percent: u8,
    pub retention_days: u16,
}

impl Default for CapturePolicy {
    fn default() -> Self {
        Self { enabled: false, sample_percent: 100, retention_days: DEFAULT_CAPTURE_RETENTION_DAYS }
    }
}

impl CapturePolicy {
    /// A policy with its rules checked: a share of 1 to 100 percent, 1 to 90 days.
    pub fn parse(enabled: bool, sample_percent: u32, retention_days: u32) -> Result<Self, String> {
        let sample_percent = u8::try_from(sample_percent)
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| "The share of calls captured is a whole percent from 1 to 100.".to_owned())?;
        let retention_days = u16::try_from(retention_days)
            .ok()
            .filter(|d| (1..=MAX_CAPTURE_RETENTION_DAYS).contains(d))
            .ok_or_else(|| format!("Captured bodies are kept from 1 to {MAX_CAPTURE_RETENTION_DAYS} days."))?;
        Ok(Self { enabled, sample_percent, retention_days })
    }
}

/// Fields to set a workspace's capture policy (the share and the days default to 100 and 7).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CapturePolicyInput {
    pub enabled: bool,
    #[serde(default)]
    pub sample_percent: Option<u32>,
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl CapturePolicyInput {
    pub fn parse(&self) -> Result<CapturePolicy, String> {
        let defaults = CapturePolicy::default();
        CapturePolicy::parse(
            self.enabled,
            self.sample_percent.unwrap_or(u32::from(defaults.sample_percent)),
            self.retention_days.unwrap_or(u32::from(defaults.retention_days)),
        )
    }
}

/// The field to set a key's own choice about capture.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyCaptureInput {
    pub capture: String,
}

/// A key's own choice about capture: follow the workspace, capture every call of the key
/// (kept as long as the workspace's policy says, even while the workspace's capture is off), or
/// capture none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyCapture {
    #[default]
    Inherit,
    Always,
    Never,
}

impl KeyCapture {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "" | "inherit" => Ok(Self::Inherit),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err("A key's capture is `inherit`, `always` or `never`.".to_owned()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inherit => "inherit",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    /// The stored form: nothing for `inherit`.
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Self::Inherit => None,
            Self::Always | Self::Never => Some(self.as_str()),
        }
    }
}

/// One captured body: its text (redacted, and cut at the size cap), how large it was before the
/// cut, and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedBody {
    pub text: String,
    /// Its size in bytes as the call had it.
    pub bytes: u64,
    /// Whether `text` stops at the cap before the end.
    pub truncated: bool,
    /// How many credential-like strings were replaced with `[REDACTED]`.
    pub redacted: u32,
}

/// A call's captured bodies: what the client sent, and what it got (a stream as its events and
/// reassembled into the answer they spell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedBodies {
    pub request: CapturedBody,
    /// `None` when the call failed before an answer.
    pub response: Option<CapturedBody>,
    /// A stream's answer put back together (text, tool calls, finish), as JSON.
    pub reassembled: Option<String>,
    pub stream: bool,
    /// When they are removed (Unix milliseconds).
    pub expires_at: i64,
}

/// What the call page can show of a call's bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Bodies {
    /// None were kept (capture was off or the call not sampled, or they were pruned).
    NotCaptured,
    /// Some were kept; only the workspace's owners see them.
    OwnersOnly,
    Captured(CapturedBodies),
}

/// One call's whole story: its record and steps, and its bodies when they were captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStory {
    #[serde(flatten)]
    pub row: RequestRow,
    pub bodies: Bodies,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_key_choices_are_checked() {
        assert_eq!(
            CapturePolicy::parse(true, 25, 30),
            Ok(CapturePolicy { enabled: true, sample_percent: 25, retention_days: 30 })
        );
        assert!(CapturePolicy::parse(true, 0, 30).is_err());
        assert!(CapturePolicy::parse(true, 101, 30).is_err());
        assert!(CapturePolicy::parse(true, 50, 0).is_err());
        assert!(CapturePolicy::parse(true, 50, 91).is_err());
        assert!(!CapturePolicy::default().enabled);
        assert_eq!(KeyCapture::parse("always"), Ok(KeyCapture::Always));
        assert_eq!(KeyCapture::parse(""), Ok(KeyCapture::Inherit));
        assert!(KeyCapture::parse("sometimes").is_err());
        assert_eq!(KeyCapture::Inherit.stored(), None);
    }
}
