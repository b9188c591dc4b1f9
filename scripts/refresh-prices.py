#!/usr/bin/env python3
"""Refreshes pricing/prices.json from LiteLLM's public price list (a well-kept source of figures).

    pip download --no-deps litellm && unzip -o litellm-*.whl litellm/model_prices_and_context_window_backup.json
    scripts/refresh-prices.py litellm/model_prices_and_context_window_backup.json "litellm 1.110.2" 2026-11-29

Every chat, responses and embedding model of the kinds Perpetuo connects gets an entry with its
input, output and cached-input prices in dollars per million tokens and the date they were taken.
Entries already in the table that the list no longer carries (base names such as
`claude-3-5-haiku`, which the lookup matches dated variants against) keep their figures and dates.
"""
import json
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
        row["as_of"] = as_of
        prices.setdefault(kind, {})[model.lower()] = row
        refreshed += 1
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
