//! Structured logs with `tracing`. `RUST_LOG` chooses what is shown.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The filter used when `RUST_LOG` is not set (its default in the settings table).
pub use perpetuo_core::platform::config::variables::DEFAULT_LOG_FILTER as DEFAULT_FILTER;

/// Installs the global subscriber, writing to `writer`. Safe to call twice (the second is ignored).
pub fn init<W>(writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(writer)
        .try_init();
}
