//! One page a file.

pub mod keys;
pub mod not_found;
pub mod providers;
pub mod request;
pub mod signin;
pub mod signup;
pub mod usage;
pub mod workspaces;
