"""Generation diversity on code prompts: n samples per prompt at temperature 0.8.

Per prompt: the fraction of unique completions among the n, and distinct-n for n = 1..4
(distinct word n-grams over all n-grams of the prompt's completions, whitespace-split).
LoRA keeps generations more diverse than full finetuning in the paper; these move with it.
"""

from __future__ import annotations

TEMPERATURE = 0.8
SAMPLES = 5


def unique_fraction(completions: list[str]) -> float:
    return len(set(c.strip() for c in completions)) / max(1, len(completions))


def distinct_n(completions: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the completions (1.0 when there are none)."""
    grams = []
    for text in completions:
        words = text.split()
        grams.extend(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 1.0
