//! The price table: US dollars per million input and output tokens by provider kind and model,
//! from `pricing/prices.json` (built in; `PRICES_FILE` replaces it at start-up). Dated model names
//! fall back to their base name (`gpt-4o-2024-08-06` -> `gpt-4o`). Unknown models have no price,
//! never a price of zero.

use std::collections::HashMap;

use serde::Deserialize;

pub const BUILT_IN: &str = include_str!("../../../pricing/prices.json");

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    /// Billionths of a dollar for these token counts.
    pub fn cost_nanos(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        // $1 per million tokens is 1000 nano-dollars per token.
        let nanos = (prompt_tokens as f64) * self.input * 1000.0 + (completion_tokens as f64) * self.output * 1000.0;
        nanos.round() as i64
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
    prices: HashMap<String, HashMap<String, (f64, f64)>>,
}

impl PriceTable {
    pub fn parse(json: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(json).map_err(|e| format!("price table is not valid: {e}"))?;
        let mut by_kind = HashMap::new();
        for (kind, models) in file.prices {
            let mut table = HashMap::new();
            for (model, (input, output)) in models {
                if !(input.is_finite() && output.is_finite() && input >= 0.0 && output >= 0.0) {
                    return Err(format!("price table: {kind}/{model} has a negative or invalid price"));
                }
                table.insert(model.to_ascii_lowercase(), Price { input, output });
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
        let table = self.by_kind.get(kind)?;
        let model = model.to_ascii_lowercase();
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

    pub fn entries(&self) -> Vec<(String, String, Price)> {
        let mut all: Vec<(String, String, Price)> = self
            .by_kind
            .iter()
            .flat_map(|(kind, models)| models.iter().map(move |(model, price)| (kind.clone(), model.clone(), *price)))
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
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
        assert_eq!(mini.cost_nanos(1_000_000, 1_000_000), 750_000_000);
        assert_eq!(table.lookup("openai", "gpt-4o-2024-08-06"), table.lookup("openai", "gpt-4o"));
        assert_eq!(table.lookup("openai", "gpt-4o-mini-2024-07-18"), Some(mini), "longest prefix wins");
        assert_eq!(table.lookup("anthropic", "claude-3-5-haiku-20241022").map(|p| p.input), Some(0.8));
        assert_eq!(table.lookup("openai", "my-finetune"), None);
        assert_eq!(table.lookup("openai_compatible", "gpt-4o"), None, "a self-hosted model is not OpenAI's price");
        assert_eq!(table.lookup("openai", "gpt-4oops"), None);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(PriceTable::parse("{}").is_err());
        assert!(PriceTable::parse(r#"{"as_of":"x","prices":{"openai":{"m":[-1,0]}}}"#).is_err());
    }

    #[test]
    fn cost_rounds_to_nanos() {
        let p = Price { input: 0.15, output: 0.6 };
        assert_eq!(p.cost_nanos(11, 7), 1650 + 4200);
    }
}
