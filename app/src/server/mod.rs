//! The service layer and the store: everything that runs only on the server. Server functions,
//! the management API and the gateway all call these same services, grouped by concern.

pub mod accounts;
pub mod budgets;
pub mod keys;
pub mod platform;
pub mod protocols;
pub mod providers;
pub mod usage;

pub use platform::error::ServiceError;
pub use platform::state::AppState;
