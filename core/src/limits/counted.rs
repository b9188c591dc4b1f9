//! Which tokens a limit counts.

use super::Need;

/// Which tokens a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Input,
    Output,
    Total,
}

impl Counted {
    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::Input => "in",
            Self::Output => "out",
            Self::Total => "all",
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Self::Input => "input tokens",
            Self::Output => "output tokens",
            Self::Total => "tokens",
        }
    }

    pub(super) fn of(self, need: Need) -> u64 {
        match self {
            Self::Input => need.input,
            Self::Output => need.output,
            Self::Total => need.input.saturating_add(need.output),
        }
    }
}
