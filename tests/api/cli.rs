//! The binary's commands beside a running server: `setup-code` agrees with the log and needs no
//! database; the commands that open the embedded database refuse, saying why, while the server
//! holds it.

use std::process::Command;

use base64::Engine as _;
use serde_json::json;

use crate::helpers::*;
use crate::process::{JWT_SECRET, Running};

/// `perpetuo <args>` with the test processes' settings, in `dir`.
fn command(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perpetuo"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENCRYPTION_KEY", base64::engine::general_purpose::STANDARD.encode([9u8; 32]))
        .env("JWT_SECRET", JWT_SECRET)
        .env("DATABASE_URL", format!("surrealkv://{}", dir.join("perpetuo.db").display()))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The binary on an empty database logs where to make the first account and the setup code, and
/// `perpetuo setup-code` (run with the same settings, while the server runs) prints the same code;
/// the logged code makes the first account.
#[tokio::test]
async fn the_binary_logs_the_setup_code_and_the_command_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(dir.path());
    let line = running
        .log_line("setup code", std::time::Duration::from_secs(30))
        .expect("the setup code is announced at first start");
    assert!(line.contains(&format!("{}/signup", running.base)), "{line}");
    let printed = command(dir.path(), &["setup-code"]);
    assert!(printed.status.success(), "{printed:?}");
    let code = String::from_utf8(printed.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 19, "{code}");
    assert!(line.contains(&code), "the log and the command agree: {line} / {code}");

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = json!({"email": email("operator"), "password": PASSWORD, "setup_code": code});
    let made = client.post(format!("{}/api/v1/auth/signup", running.base)).json(&first).send().await.unwrap();
    assert_eq!(made.status(), 201);
}

/// While the server holds the embedded database, `prices check` and `rotate-encryption-key` exit
/// 1 saying to stop it first; once it is stopped they run.
#[tokio::test]
async fn database_commands_say_to_stop_the_server_holding_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::start(dir.path());
    for args in [&["prices", "check"][..], &["rotate-encryption-key"][..]] {
        let out = command(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("stop the service first"), "{args:?}: {stderr}");
    }
    running.stop();
    let out = command(dir.path(), &["prices", "check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("every model used in the last 30 days has a price"));
}
