"""Generation diversity (the evals' ``diversity_*`` metrics) per configuration and method.

The paper: LoRA keeps generations more diverse than full FT. This tables what this sweep
measured at each configuration's last milestone, beside the base model.
"""

from __future__ import annotations

import math
from statistics import mean
from typing import Sequence

from lfl_ray.analysis.configs import Config
from lfl_ray.analysis.runs import Sweep
from lfl_ray.mlflow_schema import Metric, is_derived_metric


def diversity_metrics(sweep: Sweep) -> list[str]:
    """The ``diversity_*`` metric names the trials logged (deltas and SEs excluded)."""
    return [m for m in sweep.metric_names()
            if m.startswith(Metric.DIVERSITY_PREFIX) and not is_derived_metric(m)]


def _method(config: Config) -> str:
    return f"lora r={config.rank}" if config.is_lora else config.family


def diversity_rows(sweep: Sweep, configs: Sequence[Config]) -> tuple[tuple[str, ...], list[tuple]]:
    """(header, rows): base, then each configuration, then the mean per method."""
    names = diversity_metrics(sweep)
    if not names:
        return (), []
    header = ("config", "method", "tokens", *names)
    rows = [("base model", "base", "0",
             *(f"{sweep.base_metrics[n]:.3f}" if n in sweep.base_metrics else "-" for n in names))]
    per_method: dict[str, list[Config]] = {}
    for config in configs:
        values = [config.estimate(n) for n in names]
        rows.append((config.label, _method(config), f"{config.final_tokens:,}",
                     *(v.plain() if math.isfinite(v.value) else "-" for v in values)))
        if any(math.isfinite(v.value) for v in values):
            per_method.setdefault(_method(config), []).append(config)
    for method, members in sorted(per_method.items()):
        cells = []
        for n in names:
            values = [c.estimate(n).value for c in members if math.isfinite(c.estimate(n).value)]
            cells.append(f"{mean(values):.3f}" if values else "-")
        rows.append((f"mean of {len(members)} configs", method, "final", *cells))
    return header, rows
