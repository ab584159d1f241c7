"""The analysis figures (PNG, matplotlib Agg), in the style of the paper's plots.

- trade-off: forgetting vs learning, one curve per configuration through its milestones
  (seeds averaged), the Pareto front outlined;
- learning vs tokens and forgetting vs tokens;
- rank needed for 90% of dW's variance per matrix type and per layer, full vs LoRA;
- singular values of W_base vs W_tuned, and dW's cumulative variance;
- intruder dimensions per trial.
Each function writes one file and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lfl_ray.analysis.configs import Config  # noqa: E402
from lfl_ray.analysis.pareto import front, points  # noqa: E402
from lfl_ray.analysis.spectrum import by_kind, variance_curve  # noqa: E402
from lfl_ray.mlflow_schema import Metric  # noqa: E402

MARKERS = "os^Dv<>pPX*h"


def _colors(names: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(sorted(set(names)))}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve(config: Config, metric: str) -> tuple[list[int], list[float], list[float]]:
    tokens = config.tokens()
    estimates = [config.estimate(metric, t) for t in tokens]
    return tokens, [e.value for e in estimates], [e.se for e in estimates]


def _legend(ax, n: int) -> None:
    if n:
        ax.legend(fontsize=7, loc="best", frameon=False, ncol=1 if n <= 8 else 2)


def tradeoff(configs: Sequence[Config], path: Path, title: str = "") -> Path:
    """Forgetting vs learning: one curve per configuration, a point per milestone."""
    colors = _colors([c.family for c in configs])
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for i, config in enumerate(configs):
        _, learn, learn_se = _curve(config, Metric.LEARNING)
        _, forget, forget_se = _curve(config, Metric.FORGETTING)
        ax.errorbar(learn, forget, xerr=np.nan_to_num(learn_se), yerr=np.nan_to_num(forget_se),
                    color=colors[config.family], marker=MARKERS[i % len(MARKERS)], ms=4,
                    lw=1.2, elinewidth=0.5, alpha=0.9, label=config.label)
    fr = front(points(t for c in configs for t in c.trials))
    if fr:
        ax.plot([p.learning for p in fr], [p.forgetting for p in fr], color="black", ls="--",
                lw=1, label="Pareto front (all milestones)")
        ax.scatter([p.learning for p in fr], [p.forgetting for p in fr], s=60,
                   facecolors="none", edgecolors="black", lw=1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("learning (higher = learned more)")
    ax.set_ylabel("forgetting (higher = forgot more)")
    ax.set_title(title or "Learning vs forgetting (points at eval milestones)")
    _legend(ax, len(configs) + bool(fr))
    return _save(fig, path)


def over_tokens(configs: Sequence[Config], metric: str, path: Path, title: str = "") -> Path:
    """``metric`` against tokens seen, one curve per configuration."""
    colors = _colors([c.family for c in configs])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, config in enumerate(configs):
        tokens, values, ses = _curve(config, metric)
        values, ses = np.asarray(values), np.nan_to_num(np.asarray(ses))
        ax.plot(tokens, values, color=colors[config.family], marker=MARKERS[i % len(MARKERS)],
                ms=4, lw=1.2, label=config.label)
        ax.fill_between(tokens, values - ses, values + ses, color=colors[config.family], alpha=0.12)
    if configs and max(max(c.tokens(), default=1) for c in configs) / max(
            min(min(c.tokens(), default=1) for c in configs), 1) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} over training")
    _legend(ax, len(configs))
    return _save(fig, path)


def rank90_by_kind(results, path: Path) -> Path:
    """Mean rank for 90% of dW's variance per matrix type, one bar per trial."""
    kinds = sorted({s.kind for r in results for s in r.spectra})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(kinds) + 2), 4.5))
    width = 0.8 / max(len(results), 1)
    colors = _colors([r.method for r in results])
    x = np.arange(len(kinds))
    for i, result in enumerate(results):
        groups = by_kind(result.spectra)
        heights = [mean(s.rank90 for s in groups[k]) if k in groups else 0 for k in kinds]
        ax.bar(x + i * width - 0.4 + width / 2, heights, width, color=colors[result.method],
               label=result.label, edgecolor="black", lw=0.3)
    for result in results:
        if result.trial.is_lora and result.trial.rank:
            ax.axhline(result.trial.rank, color=colors[result.method], ls=":", lw=1)
    ax.set_xticks(x, kinds, rotation=30)
    ax.set_ylabel("rank explaining 90% of dW variance")
    ax.set_title("Rank of the weight change, full FT vs LoRA (dotted: LoRA r)")
    _legend(ax, len(results))
    return _save(fig, path)


def rank90_by_layer(results, path: Path) -> Path:
    """Rank@90% of dW against layer index, one line per trial and matrix type."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = _colors([r.method for r in results])
    for i, result in enumerate(results):
        layers = sorted({s.layer for s in result.spectra if s.layer is not None})
        ranks = [mean(s.rank90 for s in result.spectra if s.layer == layer) for layer in layers]
        ax.plot(layers, ranks, marker=MARKERS[i % len(MARKERS)], color=colors[result.method],
                label=result.label)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean rank@90% over the layer's matrices")
    ax.set_title("Rank of the weight change per layer")
    _legend(ax, len(results))
    return _save(fig, path)


def spectra(results, path: Path) -> Path:
    """Left: singular values of W_base vs W_tuned (first matrix of each trial's first type).
    Right: cumulative variance of dW, mean over that trial's matrices."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = _colors([r.label for r in results])
    for result in results:
        if not result.spectra:
            continue
        first = result.spectra[0]
        if result is results[0]:
            left.plot(first.base, color="black", lw=2, label=f"W_base ({first.name})")
        left.plot(first.tuned, color=colors[result.label], lw=1, ls="--",
                  label=f"W_tuned: {result.label}")
        n = min(len(s.delta) for s in result.spectra)
        curve = np.mean([variance_curve(s.delta)[:n] for s in result.spectra], axis=0)
        right.plot(np.arange(1, n + 1), curve, color=colors[result.label], label=result.label)
    left.set_yscale("log")
    left.set_xlabel("index")
    left.set_ylabel("singular value")
    left.set_title("Spectrum of W_tuned vs W_base")
    right.axhline(0.9, color="grey", ls=":", lw=1)
    right.set_xlabel("rank k")
    right.set_ylabel("variance of dW explained by top k")
    right.set_title("Cumulative variance of dW")
    _legend(left, len(results) + 1)
    _legend(right, len(results))
    return _save(fig, path)


def intruders(results, path: Path) -> Path:
    """Intruder dimensions per trial (total over its matrices), coloured by method."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(results) + 3), 4.5))
    colors = _colors([r.method for r in results])
    labels = [r.label for r in results]
    ax.bar(range(len(results)), [r.intruder_count for r in results],
           color=[colors[r.method] for r in results], edgecolor="black", lw=0.3)
    ax.set_xticks(range(len(results)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("intruder dimensions (all matrices)")
    ax.set_title("Intruder dimensions per trial")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=color, label=method) for method, color in colors.items()],
              fontsize=7, frameon=False)
    return _save(fig, path)
