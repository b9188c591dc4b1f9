//! The price table: US dollars per million input and output tokens by provider kind and model,
//! from `pricing/prices.json` (built in; `PRICES_FILE` replaces it at start-up). Dated model names
//! fall back to their base name (`gpt-4o-2024-08-06` -> `gpt-4o`). Unknown models have no price,
//! never a price of zero.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use surrealdb::types::SurrealValue;

use crate::platform::cache::Slots;
use crate::platform::db::{Db, now_ms};
use crate::platform::error::ServiceError;
use crate::workspaces::{OwnerScope, WorkspaceId};
use perpetuo_types::{PriceOverride, ProviderKind, TokenCounts};

mod terms;
use terms::Terms;

pub const BUILT_IN: &str = include_str!("../../../pricing/prices.json");

/// Dollars per million tokens, prompt-cache prices included, at one context size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// A 5-minute prompt-cache write (Anthropic's default).
    pub cache_write: f64,
    /// A 1-hour prompt-cache write (Anthropic bills it at 2x input).
    pub cache_write_1h: f64,
}

impl Rates {
    /// Rates with the kind's usual prompt-cache terms where the table gives none: Anthropic
    /// reads at 0.1x and writes at 1.25x input (2x for an hour), OpenAI reads at 0.5x, Gemini and
    /// DeepSeek at 0.25x; other kinds at the full input price (no discount assumed).
    pub fn for_kind(kind: &str, input: f64, output: f64, listed: Listed) -> Self {
        let terms = Terms::of(kind);
        let cache_write = listed.cache_write.unwrap_or(input * terms.write);
        Self {
            input,
            output,
            cache_read: listed.cache_read.unwrap_or(input * terms.read),
            cache_write,
            cache_write_1h: listed.cache_write_1h.unwrap_or(input * terms.write_1h).max(cache_write),
        }
    }

    /// The dearest any input token can be (a cache write can cost more than plain input).
    fn dearest_input(&self) -> f64 {
        self.input.max(self.cache_write).max(self.cache_write_1h).max(self.cache_read)
    }
}

/// Cache prices a table lists for a model (the kind's usual terms fill in the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Listed {
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub cache_write_1h: Option<f64>,
}

/// A model's price: its rates, the dearer rates of long prompts (past `above` input tokens the
/// whole call is billed at them: Gemini 2.5 Pro past 200k, Claude Sonnet 4 with the 1M-context
/// beta past 200k), and the fee of a hosted web search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub cache_write_1h: f64,
    /// Past this many input tokens, the long-context rates.
    pub long: Option<(u64, Rates)>,
    /// Billionths of a dollar per web search the provider reports.
    pub per_search_nanos: i64,
    /// The most input tokens the model takes (its context window), when the table knows it.
    pub context: Option<u64>,
}

impl Price {
    /// A price with the kind's usual prompt-cache terms where the table gives none (see
    /// [`Rates::for_kind`]), no long-context tier, and the kind's usual search fee.
    pub fn for_kind(kind: &str, input: f64, output: f64, cache_read: Option<f64>) -> Self {
        let listed = Listed { cache_read, ..Listed::default() };
        Self::of(kind, Rates::for_kind(kind, input, output, listed), None, None)
    }

    /// A price from its base rates, a long-context tier, and a search fee in dollars (the kind's
    /// usual one when `None`).
    pub fn of(kind: &str, base: Rates, long: Option<(u64, Rates)>, per_search: Option<f64>) -> Self {
        let default_search = Terms::of(kind).search_nanos;
        Self {
            input: base.input,
            output: base.output,
            cache_read: base.cache_read,
            cache_write: base.cache_write,
            cache_write_1h: base.cache_write_1h,
            long,
            per_search_nanos: per_search.map_or(default_search, |d| (d * 1e9).ceil() as i64),
            context: None,
        }
    }

    fn base(&self) -> Rates {
        Rates {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
            cache_write_1h: self.cache_write_1h,
        }
    }

    /// The rates a call with `prompt` input tokens is billed at.
    fn rates(&self, prompt: u64) -> Rates {
        match self.long {
            Some((above, long)) if prompt > above => long,
            _ => self.base(),
        }
    }

    /// The most `prompt` input and `output` tokens can cost, whatever part of the input the
    /// provider caches (a cache write can cost more than plain input), at the rates of a prompt
    /// that long, in billionths of a dollar.
    pub fn worst_nanos(&self, prompt: u64, output: u64) -> i64 {
        let rates = self.rates(prompt);
        let nanos = (prompt as f64) * rates.dearest_input() + (output as f64) * rates.output;
        (nanos * 1000.0).ceil() as i64
    }

    /// The most `searches` hosted web searches can cost, in billionths of a dollar.
    pub fn searches_nanos(&self, searches: u64) -> i64 {
        self.per_search_nanos.saturating_mul(i64::try_from(searches).unwrap_or(i64::MAX))
    }

    /// Billionths of a dollar for these token counts (and the searches they report).
    pub fn cost_nanos(&self, tokens: TokenCounts) -> i64 {
        let rates = self.rates(tokens.prompt);
        let uncached = tokens.prompt.saturating_sub(tokens.cache_read).saturating_sub(tokens.cache_write);
        let hour = tokens.cache_write_1h.min(tokens.cache_write);
        // $1 per million tokens is 1000 nano-dollars per token.
        let nanos = (uncached as f64) * rates.input
            + (tokens.cache_read as f64) * rates.cache_read
            + ((tokens.cache_write - hour) as f64) * rates.cache_write
            + (hour as f64) * rates.cache_write_1h
            + (tokens.completion as f64) * rates.output;
        ((nanos * 1000.0).round() as i64).saturating_add(self.searches_nanos(tokens.web_searches))
    }
}

#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    pub as_of: String,
    by_kind: HashMap<String, HashMap<String, Price>>,
}

#[derive(Deserialize)]
struct File {
    as_of: String,
    prices: HashMap<String, HashMap<String, Entry>>,
}

/// One model's prices, dollars per million tokens: `{"input", "output", "cached_input"?,
/// "cache_write"?, "cache_write_1h"?, "long_context"?: [{"above", "input", "output", ...}],
/// "per_search"?}` (the built-in table also dates each entry with `"as_of"`), or the older
/// `[input, output]` / `[input, output, cached input]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Dated {
        input: f64,
        output: f64,
        cached_input: Option<f64>,
        cache_write: Option<f64>,
        cache_write_1h: Option<f64>,
        #[serde(default)]
        long_context: Vec<Tier>,
        /// Dollars per hosted web search.
        per_search: Option<f64>,
        /// Input tokens the model takes at most.
        context: Option<u64>,
    },
    Listed(Vec<f64>),
}

/// A long-context tier: its rates past `above` input tokens.
#[derive(Deserialize)]
struct Tier {
    above: u64,
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
}

fn valid(values: &[Option<f64>]) -> bool {
    values.iter().flatten().all(|v| v.is_finite() && *v >= 0.0)
}

impl PriceTable {
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(json).map_err(|e| format!("price table is not valid: {e}"))?;
        let mut by_kind = HashMap::new();
        for (kind, models) in file.prices {
            let mut table = HashMap::new();
            for (model, entry) in models {
                let bad = || format!("price table: {kind}/{model} has a negative or invalid price");
                let price = match entry {
                    Entry::Dated {
                        input,
                        output,
                        cached_input,
                        cache_write,
                        cache_write_1h,
                        long_context,
                        per_search,
                        context,
                    } => {
                        if !valid(&[Some(input), Some(output), cached_input, cache_write, cache_write_1h, per_search]) {
                            return Err(bad());
                        }
                        let listed = Listed { cache_read: cached_input, cache_write, cache_write_1h };
                        let base = Rates::for_kind(&kind, input, output, listed);
                        // The lowest tier a long prompt passes (tables list one; a second is
                        // billed at the first's rates, which the table's author sees in review).
                        let long = match long_context.into_iter().min_by_key(|t| t.above) {
                            Some(t) => {
                                let values =
                                    [Some(t.input), Some(t.output), t.cached_input, t.cache_write, t.cache_write_1h];
                                if !valid(&values) || t.input < input || t.output < output {
                                    return Err(format!(
                                        "price table: {kind}/{model}'s long-context tier must be valid and no cheaper than its base"
                                    ));
                                }
                                let listed = Listed {
                                    cache_read: t.cached_input,
                                    cache_write: t.cache_write,
                                    cache_write_1h: t.cache_write_1h,
                                };
                                Some((t.above, Rates::for_kind(&kind, t.input, t.output, listed)))
                            }
                            None => None,
                        };
                        Price { context, ..Price::of(&kind, base, long, per_search) }
                    }
                    Entry::Listed(values) => {
                        let (input, output, cached) = match values.as_slice() {
                            [input, output] => (*input, *output, None),
                            [input, output, cached] => (*input, *output, Some(*cached)),
                            _ => {
                                return Err(format!(
                                    "price table: {kind}/{model} needs [input, output] or [input, output, cached input]"
                                ));
                            }
                        };
                        if !valid(&[Some(input), Some(output), cached]) {
                            return Err(bad());
                        }
                        Price::for_kind(&kind, input, output, cached)
                    }
                };
                table.insert(model.to_ascii_lowercase(), price);
            }
            by_kind.insert(kind, table);
        }
        Ok(Self { as_of: file.as_of, by_kind })
    }

    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).unwrap_or_default()
    }

    /// The price for `model` at a provider of `kind`: exact name, else the longest listed name the
    /// model starts with followed by `-` (a dated or suffixed variant).
    pub fn lookup(&self, kind: &str, model: &str) -> Option<Price> {
        let parsed = ProviderKind::parse(kind).ok();
        let vendor = Terms::of(kind).bills_as.map(ProviderKind::as_str);
        let table = self.by_kind.get(kind).or_else(|| vendor.and_then(|v| self.by_kind.get(v)))?;
        let mut model = model.to_ascii_lowercase().replace('@', "-");
        if parsed == Some(ProviderKind::Bedrock) && !self.by_kind.contains_key(kind) {
            model = bedrock_model(&model).to_owned();
        }
        // Converse serves Claude too, at Anthropic's prices; its other models under their ids
        // without the inference profile's geography.
        if parsed == Some(ProviderKind::BedrockConverse) {
            let local = without_geography(&model);
            if local.starts_with("anthropic.") {
                return self.lookup(ProviderKind::Bedrock.as_str(), &model);
            }
            model = local.to_owned();
        }
        if let Some(price) = table.get(&model) {
            return Some(*price);
        }
        table
            .iter()
            .filter(|(name, _)| {
                model.len() > name.len() && model.starts_with(name.as_str()) && model.as_bytes()[name.len()] == b'-'
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }
}

/// Anthropic's name for a Bedrock model id: without the inference profile's geography
/// (`us.`, `eu.`, `apac.`, `global.`, …), the vendor (`anthropic.`) and the version suffix
/// (`-v1:0`), so `us.anthropic.claude-sonnet-4-5-20250929-v1:0` is `claude-sonnet-4-5-20250929`.
fn bedrock_model(model: &str) -> &str {
    let model = without_geography(model).strip_prefix("anthropic.").unwrap_or(model);
    match model.rsplit_once("-v") {
        Some((name, version)) if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b':') => {
            name
        }
        _ => model,
    }
}

/// A Bedrock model id without its inference profile's geography (`us.`, `eu.`, `apac.`,
/// `us-gov.`, `global.`, …): the vendor's id (`amazon.nova-lite-v1:0`).
fn without_geography(model: &str) -> &str {
    match model.split_once('.') {
        Some((geo, rest)) if rest.contains('.') && geo.len() <= 7 => rest,
        _ => model,
    }
}

/// A workspace's own prices, `kind|model` -> price.
pub type Overrides = HashMap<String, Price>;

pub fn override_key(kind: &str, model: &str) -> String {
    format!("{kind}|{}", model.to_ascii_lowercase())
}

impl PriceTable {
    /// The price for a request: the workspace's override, else the table.
    pub fn lookup_with(&self, overrides: &Overrides, kind: &str, model: &str) -> Option<Price> {
        overrides.get(&override_key(kind, model)).copied().or_else(|| self.lookup(kind, model))
    }
}

/// A model that served requests with no known price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpriced {
    pub kind: String,
    pub model: String,
    pub requests: i64,
}

/// How long a workspace's overrides are trusted (prices may lag another instance's change by
/// this; they only affect cost estimates), and how many workspaces are held.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 10_000;

/// The prices service: the table in force and each workspace's own prices.
#[derive(Debug, Clone)]
pub struct Prices {
    db: Db,
    table: Arc<PriceTable>,
    cache: Arc<Slots<Arc<Overrides>>>,
}

impl Prices {
    pub fn new(db: Db, table: PriceTable) -> Self {
        Self { db, table: Arc::new(table), cache: Arc::new(Slots::new(CACHE_TTL, CACHE_CAPACITY)) }
    }

    /// The table's date.
    pub fn as_of(&self) -> &str {
        &self.table.as_of
    }

    /// The price of `model` at a provider of `kind` for a workspace with these overrides.
    pub fn price(&self, overrides: &Overrides, kind: &str, model: &str) -> Option<Price> {
        self.table.lookup_with(overrides, kind, model)
    }

    /// The price a call is charged at, as its record keeps it.
    pub fn price_used(&self, overrides: &Overrides, kind: &str, model: &str) -> Option<perpetuo_types::PriceUsed> {
        let own = overrides.get(&override_key(kind, model)).copied();
        let price = own.or_else(|| self.table.lookup(kind, model))?;
        Some(perpetuo_types::PriceUsed {
            input_per_million: price.input,
            output_per_million: price.output,
            cache_read_per_million: price.cache_read,
            cache_write_per_million: price.cache_write,
            workspace_price: own.is_some(),
        })
    }

    /// A workspace's price overrides, as listed in the usage tab and the API.
    pub async fn list(&self, ws: &WorkspaceId) -> Result<Vec<PriceOverride>, ServiceError> {
        let mut response = self
            .db
            .query("SELECT kind, model, input_per_million, output_per_million, updated_at FROM price_override WHERE workspace = $ws ORDER BY kind, model")
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        Ok(response.take(0)?)
    }

    /// The workspace's overrides as a lookup table, from the cache when fresh.
    pub async fn overrides(&self, ws: &WorkspaceId) -> Result<Arc<Overrides>, ServiceError> {
        if let Some(found) = self.cache.get(ws.as_str()) {
            return Ok(found);
        }
        let seen = self.cache.generation();
        let loaded: Overrides = crate::platform::db::bounded(self.list(ws))
            .await?
            .into_iter()
            .map(|o| {
                let price = Price::for_kind(&o.kind, o.input_per_million, o.output_per_million, None);
                (override_key(&o.kind, &o.model), price)
            })
            .collect();
        let loaded = Arc::new(loaded);
        self.cache.put(ws.as_str().to_owned(), Arc::clone(&loaded), seen);
        Ok(loaded)
    }

    /// Sets (or replaces) the workspace's price for a model; new requests use it.
    /// Sets the workspace's own price for a model (owners only: a price voids or raises every
    /// dollar budget).
    pub async fn set(
        &self,
        owner: &OwnerScope,
        kind: &str,
        model: &str,
        input: f64,
        output: f64,
    ) -> Result<PriceOverride, ServiceError> {
        let ws = owner.workspace();
        let kind = ProviderKind::parse(kind).map_err(ServiceError::Invalid)?;
        let model = model.trim();
        if model.is_empty() || model.len() > 200 || model.chars().any(char::is_whitespace) {
            return Err(ServiceError::Invalid("Give the model name exactly, without spaces.".into()));
        }
        for price in [input, output] {
            if !price.is_finite() || !(0.0..=1_000_000.0).contains(&price) {
                return Err(ServiceError::Invalid("Prices are dollars per million tokens, from 0 to 1000000.".into()));
            }
        }
        let now = now_ms();
        let key = format!("{}|{}", ws.as_str(), override_key(kind.as_str(), model));
        self.db
            .query(
                "UPSERT type::record('price_override', $key) CONTENT {
                    workspace: $ws, kind: $kind, model: $model, input_per_million: $input, output_per_million: $output, updated_at: $now
                 } RETURN NONE",
            )
            .bind(("key", key))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("kind", kind.as_str()))
            .bind(("model", model.to_owned()))
            .bind(("input", input))
            .bind(("output", output))
            .bind(("now", now))
            .await?
            .check()?;
        self.cache.invalidate(ws.as_str());
        Ok(PriceOverride {
            kind: kind.as_str().to_owned(),
            model: model.to_owned(),
            input_per_million: input,
            output_per_million: output,
            updated_at: now,
        })
    }

    /// Models that served requests with no known price since `since_ms`, in every workspace,
    /// most requests first: what `perpetuo prices check` lists.
    pub async fn unpriced_since(&self, since_ms: i64) -> Result<Vec<Unpriced>, ServiceError> {
        #[derive(SurrealValue)]
        struct Row {
            provider_id: String,
            model: String,
            unpriced: Option<i64>,
        }
        #[derive(SurrealValue)]
        struct Kind {
            id: String,
            kind: String,
        }
        let mut response = self
            .db
            .query(
                "SELECT provider_id, model, math::sum(unpriced) AS unpriced FROM usage_daily
                     WHERE day >= $since AND unpriced > 0 GROUP BY provider_id, model;
                 SELECT record::id(id) AS id, kind FROM provider;",
            )
            .bind(("since", since_ms.div_euclid(perpetuo_types::DAY_MS) * perpetuo_types::DAY_MS))
            .await?;
        let rows: Vec<Row> = response.take(0)?;
        let kinds: HashMap<String, String> =
            response.take::<Vec<Kind>>(1)?.into_iter().map(|k| (k.id, k.kind)).collect();
        let mut by_model: HashMap<(String, String), i64> = HashMap::new();
        for row in rows {
            let kind = kinds.get(&row.provider_id).cloned().unwrap_or_else(|| "(deleted provider)".into());
            *by_model.entry((kind, row.model)).or_default() += row.unpriced.unwrap_or(0);
        }
        let mut out: Vec<Unpriced> =
            by_model.into_iter().map(|((kind, model), requests)| Unpriced { kind, model, requests }).collect();
        out.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| (&a.kind, &a.model).cmp(&(&b.kind, &b.model))));
        Ok(out)
    }

    /// Removes the workspace's own price for a model (owners only).
    pub async fn delete(&self, owner: &OwnerScope, kind: &str, model: &str) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let key = format!("{}|{}", ws.as_str(), override_key(kind.trim(), model.trim()));
        self.db
            .query("DELETE type::record('price_override', $key) WHERE workspace = $ws RETURN NONE")
            .bind(("key", key))
            .bind(("ws", ws.as_str().to_owned()))
            .await?
            .check()?;
        self.cache.invalidate(ws.as_str());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_table_parses_and_prices() {
        let table = PriceTable::built_in();
        assert!(!table.as_of.is_empty());
        let mini = table.lookup("openai", "gpt-4o-mini").unwrap();
        let million = |prompt, completion| TokenCounts { prompt, completion, ..TokenCounts::default() };
        assert_eq!(mini.cost_nanos(million(1_000_000, 1_000_000)), 750_000_000);
        assert_eq!(table.lookup("openai", "gpt-4o-2024-08-06"), table.lookup("openai", "gpt-4o"));
        assert_eq!(table.lookup("openai", "gpt-4o-mini-2024-07-18"), Some(mini), "longest prefix wins");
        assert_eq!(table.lookup("anthropic", "claude-3-5-haiku-20241022").map(|p| p.input), Some(0.8));
        assert_eq!(table.lookup("openai", "my-finetune"), None);
        assert_eq!(table.lookup("openai_compatible", "gpt-4o"), None, "a self-hosted model is not OpenAI's price");
        assert_eq!(table.lookup("openai", "gpt-4oops"), None);
    }

    #[test]
    fn bedrock_ids_find_anthropic_prices() {
        let table = PriceTable::built_in();
        let haiku = table.lookup("anthropic", "claude-3-5-haiku-20241022");
        assert!(haiku.is_some());
        for id in ["anthropic.claude-3-5-haiku-20241022-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0"] {
            assert_eq!(table.lookup("bedrock", id), haiku, "{id}");
        }
        assert_eq!(bedrock_model("global.anthropic.claude-sonnet-4-5-20250929-v1:0"), "claude-sonnet-4-5-20250929");
        assert_eq!(bedrock_model("us-gov.anthropic.claude-3-haiku-20240307-v1:0"), "claude-3-haiku-20240307");
        assert_eq!(table.lookup("bedrock", "arn:aws:bedrock:us-east-1:1:application-inference-profile/x"), None);
        assert_eq!(table.lookup("bedrock", "amazon.nova-lite-v1:0"), None);
        let lite = table.lookup("bedrock_converse", "us.amazon.nova-lite-v1:0").map(|p| (p.input, p.output));
        assert_eq!(lite, Some((0.06, 0.24)));
        assert_eq!(table.lookup("bedrock_converse", "us.anthropic.claude-3-5-haiku-20241022-v1:0"), haiku);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(PriceTable::parse("{}").is_err());
        assert!(PriceTable::parse(r#"{"as_of":"x","prices":{"openai":{"m":[-1,0]}}}"#).is_err());
    }

    #[test]
    fn the_worst_case_is_never_below_any_cost_of_its_tokens() {
        let sonnet = Price::for_kind("anthropic", 3.0, 15.0, None);
        let worst = sonnet.worst_nanos(10_000, 100);
        for (read, write) in [(0, 0), (8_000, 1_000), (0, 10_000), (10_000, 0)] {
            let tokens = TokenCounts {
                prompt: 10_000,
                completion: 100,
                cache_read: read,
                cache_write: write,
                reasoning: 0,
                ..TokenCounts::default()
            };
            assert!(sonnet.cost_nanos(tokens) <= worst, "{read} {write}");
        }
        assert_eq!(Price::for_kind("openai", 1.0, 1.0, None).worst_nanos(u64::MAX, u64::MAX), i64::MAX, "saturates");
    }

    #[test]
    fn one_hour_cache_writes_long_prompts_and_searches_are_priced_as_billed() {
        let table = PriceTable::built_in();
        let tokens = |prompt, completion| TokenCounts { prompt, completion, ..TokenCounts::default() };
        // Claude Sonnet 4.5: $3 in, $15 out; 5-minute writes $3.75, 1-hour writes $6.
        let sonnet = table.lookup("anthropic", "claude-sonnet-4-5-20250929").unwrap();
        let writes = TokenCounts { cache_write: 1_000, cache_write_1h: 400, ..tokens(2_000, 0) };
        assert_eq!(sonnet.cost_nanos(writes), (1_000.0 * 3.0 + 600.0 * 3.75 + 400.0 * 6.0) as i64 * 1000);
        // Past 200k input tokens the whole call is billed at $6 / $22.50.
        assert_eq!(sonnet.cost_nanos(tokens(200_000, 1_000)), (200_000.0 * 3.0 + 1_000.0 * 15.0) as i64 * 1000);
        assert_eq!(sonnet.cost_nanos(tokens(200_001, 1_000)), (200_001.0 * 6.0 + 1_000.0 * 22.5) as i64 * 1000);
        // Its worst case is at the long rates too, and never below a cost of its tokens.
        let worst = sonnet.worst_nanos(300_000, 1_000);
        let hour = TokenCounts { cache_write: 300_000, cache_write_1h: 300_000, ..tokens(300_000, 1_000) };
        assert!(sonnet.cost_nanos(hour) <= worst, "{} > {worst}", sonnet.cost_nanos(hour));
        assert_eq!(worst, (300_000.0 * 12.0 + 1_000.0 * 22.5) as i64 * 1000);
        // Gemini 2.5 Pro: $1.25 / $10, past 200k $2.50 / $15.
        let pro = table.lookup("gemini", "gemini-2.5-pro").unwrap();
        assert_eq!(pro.cost_nanos(tokens(250_000, 100)), (250_000.0 * 2.5 + 100.0 * 15.0) as i64 * 1000);
        // Anthropic's web search: $10 per 1,000, on top of the tokens.
        let searched = TokenCounts { web_searches: 3, ..tokens(1_000, 0) };
        assert_eq!(sonnet.cost_nanos(searched), 3_000_000 + 3 * 10_000_000);
        assert_eq!(sonnet.searches_nanos(10), 100_000_000);
        // A workspace's own price for an Anthropic model keeps Anthropic's terms.
        let own = Price::for_kind("anthropic", 3.0, 15.0, None);
        assert_eq!((own.cache_write, own.cache_write_1h, own.per_search_nanos), (3.75, 6.0, 10_000_000));
        assert_eq!(Price::for_kind("openai", 1.0, 2.0, None).per_search_nanos, 0);
        // A tier cheaper than its base is refused.
        let cheap = r#"{"as_of":"x","prices":{"gemini":{"m":{"input":2.0,"output":8.0,"long_context":[{"above":10,"input":1.0,"output":8.0}]}}}}"#;
        assert!(PriceTable::parse(cheap).is_err());
    }

    #[test]
    fn cost_rounds_to_nanos() {
        let p = Price::for_kind("openai", 0.15, 0.6, None);
        assert_eq!(p.cost_nanos(TokenCounts { prompt: 11, completion: 7, ..TokenCounts::default() }), 1650 + 4200);
    }

    #[test]
    fn cached_prompt_tokens_are_priced_at_the_cache_rates() {
        // Anthropic: $3 in, $15 out; cache reads 0.1x, writes 1.25x.
        let sonnet = Price::for_kind("anthropic", 3.0, 15.0, None);
        let tokens = TokenCounts {
            prompt: 10_000,
            completion: 100,
            cache_read: 8_000,
            cache_write: 1_000,
            reasoning: 0,
            ..TokenCounts::default()
        };
        // 1000 uncached x 3 + 8000 x 0.3 + 1000 x 3.75 + 100 x 15, in thousandths of a cent.
        assert_eq!(
            sonnet.cost_nanos(tokens),
            (1000.0 * 3.0 + 8000.0 * 0.3 + 1000.0 * 3.75 + 100.0 * 15.0) as i64 * 1000
        );
        // A table's own cached price wins over the kind's default.
        let table = PriceTable::parse(r#"{"as_of":"x","prices":{"openai":{"m":[2.0,8.0,0.5]}}}"#).unwrap();
        assert_eq!(table.lookup("openai", "m").map(|p| p.cache_read), Some(0.5));
        assert!(PriceTable::parse(r#"{"as_of":"x","prices":{"openai":{"m":[2.0]}}}"#).is_err());
    }
}
