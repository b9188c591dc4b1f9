//! The request log as CSV (the usage tab's "Export CSV"): the tab's filters, newest first, at most
//! [`MAX_ROWS`] rows, and no cell a spreadsheet would run as a formula.

use super::reports::{MAX_PAGE, Reports};
use crate::platform::error::ServiceError;
use crate::workspaces::WorkspaceId;
use perpetuo_types::{RequestFilter, format_ts};

/// Most rows one export holds.
pub const MAX_ROWS: usize = 100_000;

const HEADER: &str = "time_utc,request_id,key,provider,model,served_model,route,stream,status,ok,error_class,attempts,prompt_tokens,completion_tokens,cache_read_tokens,cache_write_tokens,reasoning_tokens,cost_usd,latency_ms,ttft_ms\n";

impl Reports {
    /// The request log matching `filter`, as CSV text.
    pub async fn csv(&self, ws: &WorkspaceId, filter: &RequestFilter) -> Result<String, ServiceError> {
        let labels = self.labels(ws).await?;
        let mut out = String::from(HEADER);
        let mut cursor: Option<String> = None;
        let mut rows = 0;
        loop {
            let page = self.requests(ws, filter, &labels, MAX_PAGE, cursor.as_deref()).await?;
            for r in &page.data {
                let cells = [
                    format_ts(r.ts),
                    r.request_id.clone(),
                    r.key_name.clone(),
                    r.provider_label.clone().unwrap_or_default(),
                    r.model.clone(),
                    r.served_model.clone().unwrap_or_default(),
                    r.route.clone(),
                    r.stream.to_string(),
                    r.status.to_string(),
                    r.ok.to_string(),
                    r.error_class.clone().unwrap_or_default(),
                    r.attempts.to_string(),
                    r.tokens.prompt.to_string(),
                    r.tokens.completion.to_string(),
                    r.tokens.cache_read.to_string(),
                    r.tokens.cache_write.to_string(),
                    r.tokens.reasoning.to_string(),
                    r.cost_nanos.map(|n| format!("{:.9}", n as f64 / 1e9)).unwrap_or_default(),
                    r.latency_ms.to_string(),
                    r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
                ];
                out.push_str(&cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
            rows += page.data.len();
            match page.next_cursor {
                Some(next) if rows < MAX_ROWS => cursor = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

/// One CSV cell: quoted when needed, and never a formula.
pub fn cell(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("-12.5"), "-12.5", "numbers stay numbers");
        assert_eq!(cell("@cmd"), "'@cmd");
    }
}
