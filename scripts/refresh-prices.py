#!/usr/bin/env python3
"""Refreshes pricing/prices.json from LiteLLM's public price list (a well-kept source of figures).

    pip download --no-deps litellm && unzip -o litellm-*.whl litellm/model_prices_and_context_window_backup.json
    scripts/refresh-prices.py litellm/model_prices_and_context_window_backup.json "litellm 1.110.2" 2026-11-29

Every chat, responses and embedding model of the kinds Perpetuo connects gets an entry with its
input, output and cached-input prices in dollars per million tokens and the date they were taken,
with what else the vendor bills where the list says so: prompt-cache writes (5-minute and 1-hour),
long-context tiers, and a hosted web search's fee per query.
Entries already in the table that the list no longer carries (base names such as
`claude-3-5-haiku`, which the lookup matches dated variants against) keep their figures and dates.
"""
import json
import re
import sys

KINDS = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "groq": "groq",
    "mistral": "mistral", "deepseek": "deepseek", "openrouter": "openrouter",
    "together_ai": "together", "xai": "xai",
}
MODES = {"chat", "responses", "embedding", "completion"}


def per_million(value):
    return round(float(value) * 1e6, 6) if value is not None else None


def main():
    source_path, source, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
    table_path = "pricing/prices.json"
    table = json.load(open(table_path))
    prices = table["prices"]
    listing = json.load(open(source_path))
    refreshed = 0
    for name, entry in listing.items():
        if not isinstance(entry, dict):
            continue
        kind = KINDS.get(entry.get("litellm_provider"))
        if kind is None or entry.get("mode") not in MODES:
            continue
        model = name.split("/", 1)[1] if name.startswith(f"{entry['litellm_provider']}/") else name
        price_in, price_out = per_million(entry.get("input_cost_per_token")), per_million(entry.get("output_cost_per_token", 0))
        if price_in is None or price_in < 0 or price_out is None or price_out < 0:
            continue
        row = {"input": price_in, "output": price_out}
        cached = per_million(entry.get("cache_read_input_token_cost"))
        if cached is not None:
            row["cached_input"] = cached
        # Prompt-cache writes as listed (Anthropic's 5-minute and 1-hour writes differ).
        for field, key in [("cache_creation_input_token_cost", "cache_write"),
                           ("cache_creation_input_token_cost_above_1hr", "cache_write_1h")]:
            value = per_million(entry.get(field))
            if value is not None:
                row[key] = value
        # Long-context tiers: past `above` input tokens, the whole call is billed at the tier's
        # rates (Gemini 2.5 Pro above 200k, Claude with the 1M-context beta above 200k, ...).
        tiers = []
        for field, value in entry.items():
            prefix = "input_cost_per_token_above_"
            if not field.startswith(prefix) or not field.endswith("k_tokens"):
                continue
            size = field[len(prefix):-len("k_tokens")]
            if not size.isdigit():
                continue
            output = entry.get(f"output_cost_per_token_above_{size}k_tokens")
            if value is None or output is None:
                continue
            tier = {"above": int(size) * 1000, "input": per_million(value), "output": per_million(output)}
            for source_field, key in [(f"cache_read_input_token_cost_above_{size}k_tokens", "cached_input"),
                                      (f"cache_creation_input_token_cost_above_{size}k_tokens", "cache_write"),
                                      (f"cache_creation_input_token_cost_above_1hr_above_{size}k_tokens", "cache_write_1h")]:
                if entry.get(source_field) is not None:
                    tier[key] = per_million(entry[source_field])
            tiers.append(tier)
        if tiers:
            row["long_context"] = sorted(tiers, key=lambda t: t["above"])
        # A hosted web search's fee per query, in dollars (the dearest context size).
        search = entry.get("search_context_cost_per_query")
        if isinstance(search, dict) and search:
            row["per_search"] = max(float(v) for v in search.values())
        # The most input the model takes: what a call continuing a conversation stored at the
        # provider (`previous_response_id`) may bill, which a budget reserves.
        context = entry.get("max_input_tokens")
        if isinstance(context, int) and context > 0:
            row["context"] = context
        row["as_of"] = as_of
        prices.setdefault(kind, {})[model.lower()] = row
        refreshed += 1
    # Long-context tiers the list lacks, from the vendors' pricing pages: Claude Sonnet 4 and 4.5
    # with the 1M-context beta bill a request over 200k input tokens at 2x input and 1.5x output
    # (cache rates scale with input); later Claude models serve their whole window at one price.
    sonnet_1m = re.compile(r"^claude-sonnet-4(-5)?(-\d{8})?$")
    for model, row in prices.get("anthropic", {}).items():
        if sonnet_1m.match(model) and isinstance(row, dict) and "long_context" not in row:
            base = row["input"]
            row["long_context"] = [{"above": 200000, "input": base * 2, "output": row["output"] * 1.5,
                                    "cached_input": round(base * 0.2, 6), "cache_write": base * 2.5,
                                    "cache_write_1h": base * 4}]
    # Older entries in the array form, dated with the table's previous date.
    for kind, models in prices.items():
        for model, row in list(models.items()):
            if isinstance(row, list):
                keys = ["input", "output", "cached_input"]
                models[model] = dict(zip(keys, row)) | {"as_of": table.get("as_of", "unknown")}
    table["as_of"] = as_of
    table["source"] = f"{source} (model_prices_and_context_window), refreshed {as_of}"
    table["prices"] = {k: dict(sorted(v.items())) for k, v in sorted(prices.items())}
    with open(table_path, "w") as out:
        json.dump(table, out, indent=1)
        out.write("\n")
    print(f"{refreshed} prices refreshed from {source}; {sum(len(v) for v in prices.values())} in the table")


if __name__ == "__main__":
    main()
