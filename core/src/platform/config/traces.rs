//! The standard OpenTelemetry variables Perpetuo's trace export reads: the OTLP endpoint (its
//! traces endpoint, or the general one with `/v1/traces` added), the protocol (HTTP with
//! protobuf), headers, timeout, service name, sampler, and the batch queue's bounds.

use std::time::Duration;

use super::ConfigError;
use super::read::Env;

/// Which traces are kept (`OTEL_TRACES_SAMPLER` and its `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    Always,
    Never,
    Ratio(f64),
    /// A client's sampled or unsampled trace decides; a new trace is kept at this ratio.
    ParentOr(f64),
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// Sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key=value`).
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub service_name: String,
    pub sampling: Sampling,
    /// Spans waiting to be sent at most (`OTEL_BSP_MAX_QUEUE_SIZE`): more are dropped.
    pub max_queue: usize,
    pub max_batch: usize,
    /// How long a span may wait for its batch (`OTEL_BSP_SCHEDULE_DELAY`, milliseconds).
    pub delay: Duration,
}

fn percent_decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The trace export settings, `None` when no OTLP endpoint is set (or `OTEL_SDK_DISABLED=true`).
pub(super) fn read(env: &Env<'_>) -> Result<Option<TraceSettings>, ConfigError> {
    // Every variable is read (and checked) whether export is on or not.
    let disabled = env.bool("OTEL_SDK_DISABLED")?;
    let endpoint = match (env.text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")?, env.text("OTEL_EXPORTER_OTLP_ENDPOINT")?) {
        (Some(traces), _) => Some(traces),
        (None, Some(base)) => Some(format!("{}/v1/traces", base.trim_end_matches('/'))),
        (None, None) => None,
    };
    let url = |e: &String| (e.starts_with("http://") || e.starts_with("https://")) && e.parse::<http::Uri>().is_ok();
    if endpoint.as_ref().is_some_and(|e| !url(e)) {
        return Err(ConfigError("OTEL_EXPORTER_OTLP_ENDPOINT must be a URL, such as http://localhost:4318".into()));
    }
    let protocol = env.text("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")?.or(env.text("OTEL_EXPORTER_OTLP_PROTOCOL")?);
    if protocol.as_deref().is_some_and(|p| p != "http/protobuf") {
        return Err(ConfigError(
            "OTEL_EXPORTER_OTLP_PROTOCOL: Perpetuo exports over http/protobuf (the collector's port 4318); set it to \
             http/protobuf or leave it unset"
                .into(),
        ));
    }
    let mut headers = Vec::new();
    for pair in env.text("OTEL_EXPORTER_OTLP_HEADERS")?.unwrap_or_default().split(',').filter(|p| !p.trim().is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ConfigError("OTEL_EXPORTER_OTLP_HEADERS must be key=value pairs separated by commas".into()));
        };
        let (key, value) = (key.trim().to_owned(), percent_decoded(value.trim()));
        if http::HeaderName::try_from(key.as_str()).is_err() || http::HeaderValue::try_from(value.as_str()).is_err() {
            return Err(ConfigError(format!("OTEL_EXPORTER_OTLP_HEADERS: `{key}` is not a valid header")));
        }
        headers.push((key, value));
    }
    let ratio =
        match env.text("OTEL_TRACES_SAMPLER_ARG")? {
            None => 1.0,
            Some(raw) => raw.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                ConfigError("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, such as 0.25".into())
            })?,
        };
    let sampler = env.text("OTEL_TRACES_SAMPLER")?.unwrap_or_default();
    let sampling = match sampler.as_str() {
        "always_on" => Sampling::Always,
        "always_off" => Sampling::Never,
        "traceidratio" => Sampling::Ratio(ratio),
        "parentbased_always_on" => Sampling::ParentOr(1.0),
        "parentbased_always_off" => Sampling::ParentOr(0.0),
        "parentbased_traceidratio" => Sampling::ParentOr(ratio),
        _ => {
            return Err(ConfigError(
                "OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio"
                    .into(),
            ));
        }
    };
    let max_queue = env.bytes("OTEL_BSP_MAX_QUEUE_SIZE", 1)?.min(1 << 20);
    let settings = TraceSettings {
        endpoint: endpoint.clone().unwrap_or_default(),
        headers,
        timeout: env.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 1)?,
        service_name: env.text("OTEL_SERVICE_NAME")?.unwrap_or_else(|| "perpetuo".into()),
        sampling,
        max_queue,
        max_batch: env.bytes("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1)?.min(max_queue),
        delay: env.millis("OTEL_BSP_SCHEDULE_DELAY", 1)?,
    };
    Ok(endpoint.filter(|_| !disabled).map(|_| settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_with(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, ConfigError> {
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned());
        read(&Env::new(&lookup))
    }

    #[test]
    fn the_standard_variables_configure_export() {
        assert_eq!(read_with(&[]), Ok(None), "off without an endpoint");
        let on = read_with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc, x-tenant=t1"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(on.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(on.headers, vec![("authorization".into(), "Bearer abc".into()), ("x-tenant".into(), "t1".into())]);
        assert_eq!(on.sampling, Sampling::ParentOr(0.25));
        assert_eq!((on.max_queue, on.max_batch, on.delay), (2048, 512, Duration::from_millis(5000)));
        let traces = read_with(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://x/v1/t"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://y"),
        ]);
        assert_eq!(traces.unwrap().unwrap().endpoint, "https://x/v1/t", "the traces endpoint wins, as given");
        let disabled = read_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://y"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(disabled, Ok(None));
        for bad in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ] {
            let refused = read_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://y"), bad]);
            assert!(refused.as_ref().is_err_and(|e| e.0.contains(bad.0)), "{bad:?}: {refused:?}");
        }
        assert!(read_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).is_err());
    }
}
