//! Token estimates where the provider has not (yet) said: what a request's prompt will count (for
//! budget reservations and `count_tokens`) and what a stream relayed (for a stream cut short).
//!
//! Every estimate takes time linear in the text. OpenAI's BPE (`o200k_base`) is quadratic in the
//! length of one pre-tokenized piece, so text is cut into stretches of at most [`MAX_RUN`] bytes
//! between whitespace boundaries before it is encoded (a cut can only add tokens: estimates stay
//! on the high side). Past [`MAX_TOKENIZED`] bytes, text is counted by its length: in a byte-level
//! BPE no token is shorter than a byte, so the length is an upper bound. Prompts larger than
//! [`INLINE_BYTES`] are counted on the [`Estimator`]'s own low-priority threads with a deadline,
//! never on a serving thread, each workspace in its turn; past the deadline (or past the
//! workspace's share of the queue) the rest is counted by length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// TokenCounts counted per image or document (the order of a typical screenshot; providers bill
/// images by their size, which the gateway does not decode).
pub const IMAGE_TOKENS: u64 = 1_600;
/// Longest stretch without a whitespace boundary encoded in one go.
pub const MAX_RUN: usize = 64;
/// Text encoded per slice (cut at a whitespace boundary near it).
const SLICE: usize = 4096;
/// Text beyond this many bytes is counted by its length.
pub const MAX_TOKENIZED: usize = 1 << 20;
/// Prompts up to this size are counted where they are asked for (well under a millisecond).
pub const INLINE_BYTES: usize = 8 * 1024;
/// Prompt text up to this long is bounded by its length where a reservation needs a ceiling.
pub const SHORT_BYTES: usize = 1024;
/// The estimate of a prompt is raised by this share plus [`MARGIN_FLOOR`] for reservations:
/// providers' tokenizers count differently from `o200k_base`.
pub const MARGIN_PCT: u64 = 25;
pub const MARGIN_FLOOR: u64 = 16;
/// TokenCounts a provider adds for a set of tool definitions (Anthropic's tool-use system prompt is
/// up to 346 tokens; OpenAI's tool framing is smaller).
pub const TOOLS_OVERHEAD: u64 = 400;

/// What a text was counted as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// BPE tokens of the part that was encoded.
    pub tokens: u64,
    /// Bytes that were not encoded (counted by length).
    pub bytes: u64,
}

impl Counted {
    fn add(&mut self, other: Counted) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    /// A best guess of the tokens (a stretch counted by length is taken at 3 bytes a token).
    pub fn typical(&self) -> u64 {
        self.tokens.saturating_add(self.bytes.div_ceil(3))
    }

    /// The most a provider could count for it: the encoded part with the margin, the rest by
    /// length.
    pub fn ceiling(&self) -> u64 {
        with_margin(self.tokens).saturating_add(self.bytes)
    }
}

/// `tokens` raised by the estimate's margin.
pub fn with_margin(tokens: u64) -> u64 {
    tokens.saturating_add(tokens.saturating_mul(MARGIN_PCT) / 100).saturating_add(MARGIN_FLOOR)
}

/// The o200k BPE tokens of `text`, in time linear in its length, stopping (and counting the rest
/// by length) past `budget` bytes or when `stop` says so.
pub fn count_within(text: &str, budget: usize, stop: &dyn Fn() -> bool) -> Counted {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut counted = Counted::default();
    let mut encoded = 0usize;
    for slice in slices(text) {
        if encoded >= budget || stop() {
            counted.bytes = counted.bytes.saturating_add(slice.len() as u64);
            continue;
        }
        encoded += slice.len();
        // The regex engine may give up on a pathological slice: that slice is counted by length.
        match std::panic::catch_unwind(|| bpe.encode_ordinary(slice).len()) {
            Ok(n) => counted.tokens = counted.tokens.saturating_add(n as u64),
            Err(_) => counted.bytes = counted.bytes.saturating_add(slice.len() as u64),
        }
    }
    counted
}

/// The o200k BPE tokens of `text` (linear time; for text that is known to be small).
pub fn count(text: &str) -> u64 {
    count_within(text, usize::MAX, &|| false).tokens
}

/// `text` cut into slices of about [`SLICE`] bytes at whitespace boundaries, with no stretch of
/// more than [`MAX_RUN`] bytes between boundaries (longer stretches are cut at a character).
fn slices(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        let mut run = 0;
        let mut previous_space = false;
        for (i, c) in rest.char_indices() {
            let space = c.is_whitespace();
            let boundary = i > 0 && previous_space && !space;
            if boundary {
                run = 0;
                if i >= SLICE {
                    end = i;
                    break;
                }
            }
            if run >= MAX_RUN && i > 0 {
                end = i;
                break;
            }
            run += c.len_utf8();
            previous_space = space;
            end = i + c.len_utf8();
        }
        let (slice, tail) = rest.split_at(end);
        rest = tail;
        Some(slice)
    })
}

/// The text of a request that a provider counts as input, gathered from its JSON: every string in
/// the fields that reach the model (messages, system, instructions, input, tools and their
/// schemas, tool choice, response format), object keys of schemas and arguments included, with
/// images and documents counted apart.
#[derive(Debug, Default, Clone)]
pub struct PromptText {
    pub text: String,
    /// Images and documents.
    pub media: u64,
    /// Messages or items (a few tokens of framing each).
    pub turns: u64,
    /// Whether tools are offered (the provider adds its own framing for them).
    pub tools: bool,
}

/// Fields of a request body that reach the model as input.
const PROMPT_FIELDS: [&str; 12] = [
    "system",
    "messages",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "response_format",
    "text",
    // Messages' structured outputs (and the beta's name for them): a schema the model is given.
    "output_config",
    "output_format",
    // Chat's legacy function calling: definitions the provider frames as tools.
    "functions",
    "function_call",
];

impl PromptText {
    pub fn of(body: &Map<String, Value>) -> Self {
        let mut prompt = Self::default();
        for field in PROMPT_FIELDS {
            if let Some(value) = body.get(field) {
                // Definitions (tools, schemas) are sent with their keys; conversations are not.
                let keys = matches!(
                    field,
                    "tools"
                        | "tool_choice"
                        | "response_format"
                        | "text"
                        | "output_config"
                        | "output_format"
                        | "functions"
                        | "function_call"
                );
                prompt.walk(value, keys);
            }
        }
        for field in ["messages", "input"] {
            if let Some(Value::Array(items)) = body.get(field) {
                prompt.turns += items.len() as u64;
            }
        }
        // A JSON format is framed like a tool (Claude's JSON mode is answered through one).
        let json_format = body
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t != "text")
            || body
                .get("text")
                .and_then(|t| t.get("format"))
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| t != "text")
            || body.get("output_config").and_then(|c| c.get("format")).is_some_and(|f| !f.is_null())
            || body.get("output_format").is_some_and(|f| !f.is_null());
        prompt.tools = json_format
            || ["tools", "functions"]
                .iter()
                .any(|field| body.get(*field).and_then(Value::as_array).is_some_and(|t| !t.is_empty()));
        prompt
    }

    fn walk(&mut self, value: &Value, keys: bool) {
        match value {
            Value::String(s) => self.push(s),
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, keys)),
            Value::Object(map) => {
                let media = is_media(map);
                if media {
                    self.media += 1;
                }
                for (key, v) in map {
                    // A media block's payload is counted as media; its other text (a title) counts.
                    if media && matches!(key.as_str(), "source" | "image_url" | "file_data" | "file" | "data" | "url") {
                        continue;
                    }
                    if keys {
                        self.push(key);
                    }
                    // A tool call's input object is sent with its keys.
                    self.walk(v, keys || (key == "input" && v.is_object()));
                }
            }
            Value::Number(n) => self.push(&n.to_string()),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn push(&mut self, s: &str) {
        // A data URL or a base64 payload outside a media block: an attachment, not text.
        if s.starts_with("data:") {
            self.media += 1;
            return;
        }
        self.text.push_str(s);
        self.text.push('\n');
    }

    /// The part of the estimate that needs no encoding: media, framing, tools.
    fn fixed(&self) -> u64 {
        self.media
            .saturating_mul(IMAGE_TOKENS)
            .saturating_add(3 + self.turns.saturating_mul(4))
            .saturating_add(if self.tools { TOOLS_OVERHEAD } else { 0 })
    }
}

/// Whether a JSON object is an image or document block (OpenAI's `image_url`, `input_image`,
/// `file`, `input_file`; Anthropic's `image` and non-text `document`).
fn is_media(map: &Map<String, Value>) -> bool {
    match map.get("type").and_then(Value::as_str) {
        Some("image" | "image_url" | "input_image" | "file" | "input_file" | "input_audio") => true,
        Some("document") => map.get("source").and_then(|s| s.get("type")).and_then(Value::as_str) != Some("text"),
        _ => false,
    }
}

/// The high-side estimate of a body's prompt without encoding anything (every byte of text a
/// token): for when no estimator can be waited for.
pub fn ceiling_by_length(body: &Map<String, Value>) -> u64 {
    let prompt = PromptText::of(body);
    (prompt.text.len() as u64).saturating_add(prompt.fixed())
}

/// A prompt's estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptEstimate {
    pub text: Counted,
    /// Media, framing and tool overhead.
    pub fixed: u64,
}

impl PromptEstimate {
    /// What `count_tokens` answers.
    pub fn typical(&self) -> u64 {
        self.text.typical().saturating_add(self.fixed)
    }

    /// The most the provider could count (what a reservation holds).
    pub fn ceiling(&self) -> u64 {
        self.text.ceiling().saturating_add(self.fixed)
    }

    /// Whether every byte of text was encoded (no part counted by length).
    pub fn complete(&self) -> bool {
        self.text.bytes == 0
    }
}

mod fair;

use fair::{Closer, Fair, Job};

/// Counts large prompts on threads of their own, at the lowest priority, each within a deadline,
/// taking workspaces in turn (see `fair`).
#[derive(Clone)]
pub struct Estimator {
    jobs: Arc<Closer>,
    deadline: Duration,
    stats: Arc<EstimatorStats>,
}

/// What the estimator did, for the metrics.
#[derive(Debug, Default)]
pub struct EstimatorStats {
    /// Prompts counted on the estimator's threads.
    pub offloaded: AtomicU64,
    /// Estimates that met the deadline or a full queue, and counted (part of) their text by length.
    pub by_length: AtomicU64,
}

impl std::fmt::Debug for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Estimator").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

impl Estimator {
    /// Starts `threads` estimator threads (at least one).
    pub fn start(threads: usize, deadline: Duration) -> Self {
        let queue = Arc::new(Fair::default());
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new().name(format!("estimator-{n}")).spawn(move || {
                if n == 0 {
                    // The tokenizer is built on first use (its tables, tens of milliseconds):
                    // here, at start-up, rather than in the first call under a token limit or a
                    // budget. A call that comes sooner waits for this build, not its own.
                    let _ = tiktoken_rs::o200k_base_singleton();
                }
                lower_priority();
                // Until the service is dropped (and what it queued is done).
                while let Some(job) = queue.pop() {
                    job();
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "an estimator thread could not start; large prompts are counted by length");
            }
        }
        Self { jobs: Arc::new(Closer(queue)), deadline, stats: Arc::new(EstimatorStats::default()) }
    }

    pub fn stats(&self) -> &EstimatorStats {
        &self.stats
    }

    /// The estimate of a request body's prompt, for a workspace (`tenant`).
    pub async fn prompt(&self, tenant: &str, body: &Map<String, Value>) -> PromptEstimate {
        self.estimate(tenant, PromptText::of(body)).await
    }

    /// The most a provider could count for a prompt, as limits and budgets hold it: a prompt of at
    /// most [`SHORT_BYTES`] of text is bounded by its length (a token is at least a byte) rather
    /// than counted, which costs no tokenizer run and holds at most a few hundred tokens more than
    /// a count would. The flag says whether it was counted.
    pub async fn prompt_ceiling(&self, tenant: &str, body: &Map<String, Value>) -> (u64, bool) {
        let prompt = PromptText::of(body);
        if prompt.text.len() <= SHORT_BYTES {
            let text = Counted { tokens: 0, bytes: prompt.text.len() as u64 };
            return (PromptEstimate { text, fixed: prompt.fixed() }.ceiling(), false);
        }
        (self.estimate(tenant, prompt).await.ceiling(), true)
    }

    /// The estimate of gathered prompt text: inline when small, else on an estimator thread
    /// within the deadline, in the tenant's turn (past its share of the queue, by length).
    pub async fn estimate(&self, tenant: &str, prompt: PromptText) -> PromptEstimate {
        let fixed = prompt.fixed();
        if prompt.text.len() <= INLINE_BYTES {
            return PromptEstimate { text: count_within(&prompt.text, MAX_TOKENIZED, &|| false), fixed };
        }
        let length = Counted { tokens: 0, bytes: prompt.text.len() as u64 };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let deadline = self.deadline;
        let expired = Arc::new(AtomicBool::new(false));
        let job_expired = Arc::clone(&expired);
        // The deadline counts from when a thread takes the prompt: its wait in the queue is
        // bounded apart (the caller waits twice the deadline at most), so one tenant's prompts
        // ahead of it cannot turn another's count into a count by length.
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let stop = || job_expired.load(Ordering::Relaxed) || started.elapsed() >= deadline;
            let _ = tx.send(count_within(&prompt.text, MAX_TOKENIZED, &stop));
        });
        if self.jobs.0.push(tenant, job).is_err() {
            self.stats.by_length.fetch_add(1, Ordering::Relaxed);
            return PromptEstimate { text: length, fixed };
        }
        self.stats.offloaded.fetch_add(1, Ordering::Relaxed);
        // A caller that stops waiting (its call gave up) stops the count too.
        let _stop = StopOnDrop(Arc::clone(&expired));
        let counted = match tokio::time::timeout(deadline * 2 + Duration::from_millis(50), rx).await {
            Ok(Ok(counted)) => counted,
            _ => {
                expired.store(true, Ordering::Relaxed);
                length
            }
        };
        if counted.bytes > 0 {
            self.stats.by_length.fetch_add(1, Ordering::Relaxed);
        }
        PromptEstimate { text: counted, fixed }
    }
}

/// Tells a count in progress to stop once its caller no longer waits for it.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Estimator threads yield to every serving thread.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy as Normal, ThreadPriority, ThreadSchedulePolicy as Policy};
    let _ = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        Policy::Normal(Normal::Other),
    );
}

/// The output a stream relayed, counted as it goes: text, reasoning and tool arguments, encoded in
/// slices of about a kilobyte (linear), the first [`METER_TOKENIZED`] bytes by BPE and the rest by
/// length.
#[derive(Debug, Default)]
pub struct OutputMeter {
    pending: String,
    counted: Counted,
    encoded: usize,
    /// Pieces of output seen (a delta carries at least one token).
    pieces: u64,
}

/// Output text of one stream encoded by BPE; the rest is counted by length.
pub const METER_TOKENIZED: usize = 64 * 1024;
const METER_SLICE: usize = 1024;

impl OutputMeter {
    /// One delta of output.
    pub fn add(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.pieces += 1;
        if self.encoded >= METER_TOKENIZED {
            self.counted.bytes = self.counted.bytes.saturating_add(text.len() as u64);
            return;
        }
        self.pending.push_str(text);
        if self.pending.len() >= METER_SLICE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let budget = METER_TOKENIZED.saturating_sub(self.encoded);
        let counted = count_within(&self.pending, budget, &|| false);
        self.encoded += self.pending.len();
        self.counted.add(counted);
        self.pending.clear();
    }

    /// The output tokens relayed, on the high side: the encoded part with the estimate's margin,
    /// the rest by length, and never fewer than one per piece.
    pub fn tokens(&mut self) -> u64 {
        if !self.pending.is_empty() {
            self.flush();
        }
        if self.pieces == 0 {
            return 0;
        }
        self.counted.ceiling().max(self.pieces)
    }

    /// Whether any output was seen.
    pub fn is_empty(&self) -> bool {
        self.pieces == 0
    }
}

mod bounds;
pub use bounds::{DEFAULT_SEARCHES, answer_output, search_bound, unseen_input};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_flooding_the_estimator_waits_behind_itself() {
        // One thread, and a deadline long enough that nothing here is cut by it.
        let estimator = Estimator::start(1, Duration::from_secs(20));
        let done = Arc::new(AtomicU64::new(0));
        let mut flood = tokio::task::JoinSet::new();
        for i in 0..8 {
            let (estimator, done) = (estimator.clone(), Arc::clone(&done));
            // Words the BPE takes its time over, a megabyte of them.
            let text = format!("{i} {}", "supercalifragilistic expialidocious ".repeat(28_000));
            flood.spawn(async move {
                estimator.prompt("flood", &map(json!({"input": text}))).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Once the flood waits in the queue, another tenant asks.
        while estimator.stats().offloaded.load(Ordering::SeqCst) < 8 {
            tokio::task::yield_now().await;
        }
        let quiet = estimator.prompt("quiet", &map(json!({"input": "A question about the sea. ".repeat(400)}))).await;
        let flood_done = done.load(Ordering::SeqCst);
        assert!(quiet.complete(), "counted in full");
        // In its turn: after the flood's prompt that was running, not after all eight.
        assert!(flood_done <= 2, "the quiet tenant waited for {flood_done} of the flood's prompts");
        while flood.join_next().await.is_some() {}
    }

    #[test]
    fn a_json_format_is_counted_like_tools_with_its_schema() {
        let plain = map(json!({"messages": [{"role": "user", "content": "hi"}]}));
        let base = ceiling_by_length(&plain);
        let mode =
            map(json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}));
        assert!(ceiling_by_length(&mode) >= base + TOOLS_OVERHEAD, "JSON mode framed like a tool");
        let schema = json!({"type": "object", "properties": {"a_rather_long_property_name": {"type": "string"}}});
        let messages = map(json!({"messages": [{"role": "user", "content": "hi"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}));
        assert!(
            ceiling_by_length(&messages) >= base + TOOLS_OVERHEAD + "a_rather_long_property_name".len() as u64,
            "Messages' schema is counted"
        );
    }

    #[test]
    fn hosted_searches_are_bounded_by_their_tools() {
        let body = |tools: Value| map(json!({"tools": tools}));
        assert_eq!(search_bound(&body(json!([{"type": "function", "name": "f"}]))), 0);
        assert_eq!(
            search_bound(&body(json!([{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]))),
            3
        );
        assert_eq!(
            search_bound(&body(json!([{"type": "web_search_20250305", "name": "web_search"}]))),
            DEFAULT_SEARCHES
        );
        assert_eq!(search_bound(&map(json!({}))), 0);
    }

    #[test]
    fn an_answers_output_is_counted_without_its_envelope() {
        let chat = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, friend"}, "finish_reason": "stop"}]});
        let counted = answer_output(&chat);
        let words = count("Hello there, friend");
        assert!(counted >= words && counted <= with_margin(words), "{counted} for {words}");
        let tool = json!({"type": "message", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}]});
        assert!(answer_output(&tool) >= count("get_weather") + count(r#"{"city":"Paris"}"#));
        assert_eq!(answer_output(&json!({"id": "x", "object": "list", "model": "m"})), 0);
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn slices_cover_the_text_and_bound_every_run() {
        for text in ["", "hello world", &"a".repeat(10_000), &"word ".repeat(3000), &"é".repeat(500), &" ".repeat(700)]
        {
            let parts: Vec<&str> = slices(text).collect();
            assert_eq!(parts.concat(), text);
            for part in &parts {
                assert!(part.len() <= SLICE + MAX_RUN + 4, "{}", part.len());
                let longest = part.split(char::is_whitespace).map(str::len).max().unwrap_or(0);
                assert!(longest <= MAX_RUN + 4, "a run of {longest}");
            }
        }
    }

    #[test]
    fn ordinary_text_counts_as_the_bpe_does() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        let exact = tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64;
        let ours = count(&text);
        assert!(ours >= exact && ours <= exact + exact / 50 + 4, "{ours} vs {exact}");
    }

    #[test]
    fn hostile_text_is_counted_in_linear_time_and_never_below_the_bpe() {
        // The letter `a`, 256 KiB: one piece for the BPE, quadratic without the cuts.
        let text = "a".repeat(256 * 1024);
        let started = Instant::now();
        let counted = count_within(&text, MAX_TOKENIZED, &|| false);
        let took = started.elapsed();
        // Not a timing assertion on the result: a bound that only a quadratic count could miss.
        assert!(took < Duration::from_secs(20), "{took:?}");
        let small = "a".repeat(4096);
        let exact = tiktoken_rs::o200k_base_singleton().encode_ordinary(&small).len() as u64;
        assert!(count(&small) >= exact, "cuts only add tokens");
        assert!(counted.tokens > 0 && counted.tokens <= text.len() as u64);
    }

    #[test]
    fn past_the_budget_text_counts_by_length() {
        let text = "hello world ".repeat(1000);
        let counted = count_within(&text, 1000, &|| false);
        assert!(counted.bytes > 0 && counted.bytes < text.len() as u64);
        assert!(counted.ceiling() >= count(&text), "the length bound is above the BPE");
        let stopped = count_within(&text, usize::MAX, &|| true);
        assert_eq!((stopped.tokens, stopped.bytes), (0, text.len() as u64));
    }

    #[test]
    fn prompts_gather_every_field_that_reaches_the_model() {
        let chat = PromptText::of(&map(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "and?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "temperature": 0.5
        })));
        for piece in ["Hello", "get_weather", "Paris", "sunny", "and?", "Weather", "city"] {
            assert!(chat.text.contains(piece), "{piece} in {}", chat.text);
        }
        assert!(!chat.text.contains("AAAA") && !chat.text.contains("0.5"), "{}", chat.text);
        assert_eq!((chat.media, chat.turns, chat.tools), (1, 4, true));
        let responses = PromptText::of(&map(json!({"model": "m", "instructions": "Be terse.", "input": "Hi there"})));
        assert!(responses.text.contains("Be terse.") && responses.text.contains("Hi there"));
        let messages = PromptText::of(&map(
            json!({"model": "m", "system": [{"type": "text", "text": "sys"}], "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}, {"type": "document", "source": {"type": "text", "data": "a text document"}}]}
            ]}),
        ));
        assert!(
            messages.text.contains("sys")
                && messages.text.contains("a text document")
                && !messages.text.contains("QUJD")
        );
        assert_eq!(messages.media, 1);
    }

    #[tokio::test]
    async fn large_prompts_are_counted_off_the_caller_and_small_ones_inline() {
        let estimator = Estimator::start(1, Duration::from_secs(5));
        let small = estimator.prompt("ws", &map(json!({"messages": [{"role": "user", "content": "Hello"}]}))).await;
        assert!(small.complete() && small.text.tokens >= 1);
        assert_eq!(estimator.stats().offloaded.load(Ordering::Relaxed), 0);
        let text = "lorem ipsum dolor sit amet ".repeat(2000);
        let large = estimator.prompt("ws", &map(json!({"messages": [{"role": "user", "content": text}]}))).await;
        assert_eq!(estimator.stats().offloaded.load(Ordering::Relaxed), 1);
        assert!(large.complete());
        assert!(large.ceiling() > large.typical() && large.typical() >= count(&text));
    }

    #[tokio::test]
    async fn a_missed_deadline_counts_by_length() {
        let estimator = Estimator::start(1, Duration::ZERO);
        let text = "lorem ipsum dolor sit amet ".repeat(2000);
        let estimate = estimator.prompt("ws", &map(json!({"input": text}))).await;
        assert!(estimate.text.bytes > 0, "{estimate:?}");
        assert!(estimate.ceiling() >= text.len() as u64 / 2);
    }

    #[test]
    fn the_meter_counts_what_was_relayed_on_the_high_side() {
        let mut meter = OutputMeter::default();
        assert_eq!(meter.tokens(), 0);
        let words: Vec<String> = (0..500).map(|i| format!(" word{i}")).collect();
        for w in &words {
            meter.add(w);
        }
        let exact = count(&words.concat());
        let counted = meter.tokens();
        assert!(counted >= exact && counted >= 500, "{counted} vs {exact}");
        let mut long = OutputMeter::default();
        let piece = "x".repeat(1000);
        for _ in 0..100 {
            long.add(&piece);
        }
        assert!(long.tokens() >= 100 && long.tokens() <= 100_000 + 16);
    }
}
