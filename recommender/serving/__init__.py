"""Serving: a loaded model answering requests through named stages (query, candidates, rules,
ranking, mixing, answer). Pure: no Kafka, no aiohttp."""
