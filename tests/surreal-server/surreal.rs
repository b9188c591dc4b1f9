//! The SurrealDB server, from SurrealDB's own crate, for Perpetuo's tests of several instances on
//! one database (`surreal start --bind ... memory`).
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
