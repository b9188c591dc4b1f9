//! The gateway, black-box: by behaviour, one module each. Shared here: fast timeouts and a
//! workspace with one OpenAI-style provider.

mod agents;
mod auth;
mod azure;
mod bedrock;
mod fallback;
mod gemini;
mod hostile;
mod protocols;
mod requests;
mod streaming;
mod structured;
mod vertex;

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::mock::{Flavor, Mock};

pub fn fast_options() -> Options {
    let mut options = Options::default();
    options.settings.upstream.first_byte_timeout = Duration::from_millis(1500);
    options.settings.upstream.idle_timeout = Duration::from_millis(1500);
    options.settings.upstream.total_timeout = Duration::from_secs(10);
    options.settings.rate_limit_key_per_min = std::num::NonZeroU32::new(10_000).unwrap();
    options
}

pub async fn openai_gateway() -> (Gateway, Mock) {
    let gw = Gateway::start(fast_options()).await;
    let mock = Mock::start(Flavor::OpenAi).await;
    gw.provider("Primary", "openai_compatible", &mock.base_url(), 10).await;
    (gw, mock)
}

pub fn error_of(body: &Value) -> (&str, &str) {
    (body["error"]["type"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}
