//! What a call holds until it is recorded: its budget reservation and its places and tokens under
//! limits. One value, settled once, at the call's charge, when its record is kept (the call's span
//! ends with the record it describes, in `record`).

use perpetuo_core::AppState;

use super::budget::Reservation;
use super::charge::Charge;
use super::limits::CallLimits;

/// A call's reservation and limits (given back when dropped: an in-flight place on drop, tokens
/// and money by [`Holdings::settle`]).
#[derive(Default)]
pub struct Holdings {
    /// The call's budget reservation, if a budget applies.
    pub budget: Option<Reservation>,
    /// What the call holds under token and in-flight limits.
    pub limits: CallLimits,
}

impl Holdings {
    pub fn new(budget: Option<Reservation>) -> Self {
        Self { budget, limits: CallLimits::default() }
    }

    /// Settles the reservation and the token limits at what the call is charged.
    pub fn settle(&self, state: &AppState, charge: &Charge) {
        if let Some(budget) = &self.budget {
            super::budget::settle(state, budget, charge);
        }
        super::limits::settle_call(state, &self.limits, charge.tokens);
    }

    /// The prompt's estimate the reservation made, if there is one.
    pub fn prompt(&self) -> Option<u64> {
        self.budget.as_ref().map(|b| b.prompt)
    }
}
