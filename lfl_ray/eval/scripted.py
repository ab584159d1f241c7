"""A backend that answers generation requests with given text instead of a model's.

Fault injection uses it to put hostile programs through a trial's real milestone eval
(prompting, code extraction, the sandbox, scoring, logging) without a model that happens
to write them; scoring requests still go to the wrapped backend.
"""

from __future__ import annotations

from typing import Sequence

from lfl_ray.eval.backend import cut_at_stop


class ScriptedBackend:
    """Serves ``completions`` in turn (cycling) to every generation request; the rest of the
    interface is ``inner``'s."""

    def __init__(self, inner, completions: Sequence[str]):
        if not completions:
            raise ValueError("ScriptedBackend needs at least one completion")
        self.inner = inner
        self.tokenizer = inner.tokenizer
        self.completions = tuple(completions)
        self.served = 0
        """How many completions were handed out: the next one is ``served % len(completions)``."""

    def loglikelihood(self, requests, desc: str = "") -> list[float]:
        return self.inner.loglikelihood(requests, desc=desc)

    def generate(self, prompts, *, max_new_tokens: int, stop=(), temperature: float = 0.0,
                 n: int = 1, seed: int = 0, desc: str = "") -> list[list[str]]:
        out = []
        for _ in prompts:
            row = []
            for _ in range(n):
                row.append(cut_at_stop(self.completions[self.served % len(self.completions)], stop))
                self.served += 1
            out.append(row)
        return out
