//! `perpetuo`: parse the command line, load settings, start.

use std::io::Write as _;
use std::process::ExitCode;

use perpetuo::cli::{Command, gen_secrets, help};
use perpetuo::startup::{Application, leptos_options, shutdown_signal};
use perpetuo::{Settings, telemetry};

/// mimalloc: the gateway allocates many small short-lived buffers per request; glibc's malloc
/// showed up at about a tenth of CPU time under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("the async runtime could not start: {e}")),
    };
    runtime.block_on(run())
}

/// Transparent huge pages off for this process, before the allocator maps anything. mimalloc asks
/// the kernel for huge pages on its arenas; each first touch of one then clears 2 MB, and RSS
/// grows by whole huge pages that a request never needs. Measured on one fresh gateway (c=256 for
/// 10 s, then c=64 for 5 s): with huge pages, start-up RSS 131 MB, peak 179 MB, 10,297 / 11,719
/// req/s; without, 95 MB, 153 MB, 12,426 / 14,082 req/s. A kernel that refuses the request is no
/// reason not to start.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

async fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(command) => command,
        Err(message) => return fail(&message),
    };
    match command {
        Command::Help => {
            let _ = std::io::stdout().write_all(help().as_bytes());
            return ExitCode::SUCCESS;
        }
        Command::GenSecrets => {
            return match gen_secrets() {
                Ok(block) => {
                    let _ = std::io::stdout().write_all(block.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(message) => fail(&message),
            };
        }
        Command::Serve | Command::RotateEncryptionKey | Command::PricesCheck | Command::SetupCode => {}
    }

    // A missing .env is fine (production sets real variables); a broken one is not.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        return fail(&format!(".env could not be read: {e}"));
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return fail(&e.to_string()),
    };
    telemetry::init(std::io::stderr, std::io::IsTerminal::is_terminal(&std::io::stderr()));

    if command == Command::SetupCode {
        let _ = std::io::stdout().write_all(perpetuo::cli::setup_code(&settings).as_bytes());
        return ExitCode::SUCCESS;
    }

    if command == Command::RotateEncryptionKey {
        return match perpetuo::cli::rotate_encryption_key(&settings).await {
            Ok(count) => {
                let _ = writeln!(std::io::stdout(), "re-sealed {count} provider keys with the current ENCRYPTION_KEY");
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }

    if command == Command::PricesCheck {
        return match perpetuo::cli::prices_check(&settings).await {
            Ok(report) => {
                let _ = std::io::stdout().write_all(report.as_bytes());
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }

    let options = leptos_options(&settings);
    let app = match Application::build(settings, options).await {
        Ok(app) => app,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(addr) = app.local_addr() {
        tracing::info!("Perpetuo listening on http://{addr}");
    }
    tracing::info!("settings: {}", app.state().settings.summary());
    perpetuo::cli::announce_setup_code(app.state(), app.local_addr()).await;
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server error: {e}")),
    }
}

/// One line on stderr, exit status 1.
fn fail(message: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::from(1)
}
