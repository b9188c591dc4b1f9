//! Reading the variables: each by its name, once, with its default from the table
//! (`variables.rs`), and every error naming the variable.

use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;

use super::ConfigError;
use super::variables::{self, DefaultValue};
use crate::platform::secret::Secret32;

/// The environment (or a test's variables), read through the table.
pub(super) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The value set, trimmed; `None` when unset or empty.
    pub(super) fn set(&self, name: &str) -> Option<String> {
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// The table's default for `name`: a name missing from the table is a bug the tests catch.
    fn default_of(name: &str) -> Result<DefaultValue, ConfigError> {
        variables::find(name)
            .map(|v| v.default)
            .ok_or_else(|| ConfigError(format!("{name} is read but not listed in the settings table")))
    }

    /// The value set, or the table's default value (`None` when it has none).
    pub(super) fn text(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let default = Self::default_of(name)?;
        Ok(self.set(name).or(match default {
            DefaultValue::Value(value) => Some(value.to_owned()),
            DefaultValue::Derived(_) | DefaultValue::Unset | DefaultValue::Required => None,
        }))
    }

    /// A whole number of at least `min`, defaulting to the table's value or, for a derived
    /// default, to `derived`.
    fn number(&self, name: &str, derived: Option<u64>, min: u64) -> Result<u64, ConfigError> {
        let example = match Self::default_of(name)? {
            DefaultValue::Value(value) => value.to_owned(),
            _ => derived.unwrap_or(min).to_string(),
        };
        let value = match (self.text(name)?, derived) {
            (Some(raw), _) => raw
                .parse::<u64>()
                .map_err(|_| ConfigError(format!("{name} must be a whole number, such as {example}")))?,
            (None, Some(value)) => value,
            (None, None) => return Err(ConfigError(format!("{name} has no default in the settings table"))),
        };
        if value < min {
            return Err(ConfigError(format!("{name} must be at least {min}")));
        }
        Ok(value)
    }

    pub(super) fn u64(&self, name: &str, min: u64) -> Result<u64, ConfigError> {
        self.number(name, None, min)
    }

    /// A whole number whose default is worked out at start-up.
    pub(super) fn u64_or(&self, name: &str, derived: u64, min: u64) -> Result<u64, ConfigError> {
        self.number(name, Some(derived), min)
    }

    /// A size in bytes, of at least `min`.
    pub(super) fn bytes(&self, name: &str, min: u64) -> Result<usize, ConfigError> {
        usize::try_from(self.u64(name, min)?).map_err(|_| ConfigError(format!("{name} is too large for this machine")))
    }

    /// A small count (attempts, thresholds, days), at least 1.
    pub(super) fn count(&self, name: &str) -> Result<u32, ConfigError> {
        u32::try_from(self.u64(name, 1)?).map_err(|_| ConfigError(format!("{name} must be a small whole number")))
    }

    /// A quota, at least 1 (the database compares it with counts).
    pub(super) fn quota(&self, name: &str) -> Result<i64, ConfigError> {
        i64::try_from(self.u64(name, 1)?).map_err(|_| ConfigError(format!("{name} is too large")))
    }

    /// Milliseconds, at least `min`.
    pub(super) fn millis(&self, name: &str, min: u64) -> Result<Duration, ConfigError> {
        self.u64(name, min).map(Duration::from_millis)
    }

    /// Requests per minute, at least 1.
    pub(super) fn per_minute(&self, name: &str) -> Result<NonZeroU32, ConfigError> {
        let value = u32::try_from(self.u64(name, 1)?)
            .map_err(|_| ConfigError(format!("{name} must be a whole number of requests per minute")))?;
        NonZeroU32::new(value).ok_or_else(|| ConfigError(format!("{name} must be at least 1")))
    }

    fn boolean(&self, name: &str, derived: Option<bool>) -> Result<bool, ConfigError> {
        match self.text(name)?.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => derived.ok_or_else(|| ConfigError(format!("{name} has no default in the settings table"))),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(_) => Err(ConfigError(format!("{name} must be true or false"))),
        }
    }

    pub(super) fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        self.boolean(name, None)
    }

    /// A yes or no whose default is worked out at start-up.
    pub(super) fn bool_or(&self, name: &str, derived: bool) -> Result<bool, ConfigError> {
        self.boolean(name, Some(derived))
    }

    /// A required secret: base64 of exactly 32 bytes.
    pub(super) fn key(&self, name: &str) -> Result<Option<Secret32>, ConfigError> {
        let Some(raw) = self.text(name)? else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| ConfigError(format!("{name} must be base64: run `perpetuo gen-secrets` for a fresh one")))?;
        let array: [u8; 32] =
            bytes.try_into().map_err(|_| ConfigError(format!("{name} must be 32 bytes when base64 decoded")))?;
        Ok(Some(Secret32::new(array)))
    }

    /// A database identifier: letters, digits and underscores.
    pub(super) fn identifier(&self, name: &str) -> Result<String, ConfigError> {
        match self.text(name)? {
            Some(value) if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(value),
            _ => Err(ConfigError(format!("{name} must contain only letters, digits and underscores"))),
        }
    }

    /// Addresses and ranges, comma separated.
    pub(super) fn cidrs(&self, name: &str) -> Result<Vec<IpNet>, ConfigError> {
        let Some(raw) = self.text(name)? else { return Ok(Vec::new()) };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>().or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                    ConfigError(format!(
                        "{name} must be a comma-separated list of addresses or CIDR ranges, such as 10.0.0.0/8,127.0.0.1 (could not read `{item}`)"
                    ))
                })
            })
            .collect()
    }
}
