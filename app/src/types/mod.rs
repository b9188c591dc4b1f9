//! Types that cross the wire between the server, the browser and API clients, one module per
//! resource, plus the parsers for values with rules. Compiled for both `ssr` and `hydrate`.

pub mod accounts;
pub mod budgets;
pub mod forms;
pub mod keys;
pub mod providers;
pub mod time;
pub mod usage;

pub use accounts::*;
pub use budgets::*;
pub use forms::*;
pub use keys::*;
pub use providers::*;
pub use time::*;
pub use usage::*;
