"""What one evaluation returns: metrics, per-item values for pairing, and sample outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class EvalResult:
    """Metrics of one model on fixed items, with the per-item values behind them."""

    metrics: dict[str, float] = field(default_factory=dict)
    """Flat metrics (heldout_loss, humaneval_pass1, hellaswag_acc_norm, ...), each with a
    ``<name>_se`` beside it where an SE makes sense."""
    items: dict[str, list[float]] = field(default_factory=dict)
    """Per-item values of each metric, in the same item order for the base model and every
    trial (per-block mean losses, per-problem 0/1, per-example margins)."""
    groups: dict[str, list[str]] = field(default_factory=dict)
    """Per-item cluster ids (source documents) for a metric whose items share documents."""
    samples: list[dict] = field(default_factory=list)
    """A few generations for inspection: suite, prompt, completion, correct."""

    def merge(self, other: "EvalResult") -> "EvalResult":
        """Add another suite's result into this one (in place) and return self."""
        self.metrics.update(other.metrics)
        self.items.update(other.items)
        self.groups.update(other.groups)
        self.samples.extend(other.samples)
        return self

    def to_json(self) -> dict:
        def clean(x):
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "metrics": {k: clean(float(v)) for k, v in self.metrics.items()},
            "items": {k: [clean(float(x)) for x in v] for k, v in self.items.items()},
            "groups": {k: [str(g) for g in v] for k, v in self.groups.items()},
            "samples": list(self.samples),
        }

    @classmethod
    def from_json(cls, data: dict) -> "EvalResult":
        def back(x):
            return float("nan") if x is None else float(x)

        return cls(
            metrics={k: back(v) for k, v in data.get("metrics", {}).items()},
            items={k: [back(x) for x in v] for k, v in data.get("items", {}).items()},
            groups={k: list(v) for k, v in data.get("groups", {}).items()},
            samples=list(data.get("samples", [])),
        )
