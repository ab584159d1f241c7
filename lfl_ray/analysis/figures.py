"""The analysis figures (PNG, matplotlib Agg), in the style of the paper's plots.

- trade-off: forgetting vs learning, one curve per configuration through its milestones
  (seeds averaged), the Pareto front outlined;
- learning vs tokens and forgetting vs tokens;
- rank needed for 90% of dW's variance per matrix type and per layer, full vs LoRA;
- dW's singular values, how W's singular values moved, and dW's cumulative variance;
- intruder dimensions per trial.
Weight figures give each trial its own colour (the legend's label is the report tables'
"trial" column) and draw LoRA hatched or dashed.
Each function writes one file and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from lfl_ray.analysis.configs import Config  # noqa: E402
from lfl_ray.analysis.pareto import front, points  # noqa: E402
from lfl_ray.analysis.spectrum import by_kind, variance_curve  # noqa: E402
from lfl_ray.mlflow_schema import Metric  # noqa: E402

MARKERS = "os^Dv<>pPX*h"


def _colors(names: Sequence[str]) -> dict[str, tuple]:
    """A distinct colour per distinct name: tab10, tab20, then evenly spaced turbo hues."""
    names = sorted(set(names))
    if len(names) <= 20:
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        return {name: cmap(i) for i, name in enumerate(names)}
    cmap = plt.get_cmap("turbo")
    return {name: cmap(x) for name, x in zip(names, np.linspace(0.03, 0.97, len(names)))}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # "tight" also takes in legends placed outside the axes, so nothing is cut off.
    fig.savefig(path, dpi=110, bbox_inches="tight")
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


def _below(fig, handles, labels) -> None:
    """The legend under the whole figure, where long trial labels cover neither data nor
    axis labels (``_save`` crops to take it in)."""
    if handles:
        fig.legend(handles, labels, fontsize=7, frameon=False, loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=1 if len(handles) <= 4 else 2)


def _lora_ranks(results) -> list[int]:
    return sorted({r.trial.rank for r in results if r.trial.is_lora and r.trial.rank})


def _mark_ranks(ax, ranks: Sequence[int], axis: str = "y") -> None:
    """A dotted grey line at each LoRA rank r, labelled, the bound a rank-r update cannot pass."""
    for rank in ranks:
        if axis == "y":
            ax.axhline(rank, color="grey", ls=":", lw=1)
            ax.annotate(f"r={rank}", (1, rank), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", va="center", fontsize=7, color="grey")
        else:
            ax.axvline(rank, color="grey", ls=":", lw=1)
            ax.annotate(f"r={rank}", (rank, 1), xycoords=("data", "axes fraction"), xytext=(2, -8),
                        textcoords="offset points", fontsize=7, color="grey")


def rank90_by_kind(results, path: Path) -> Path:
    """Mean rank for 90% of dW's variance per matrix type, one bar per trial (a colour each,
    LoRA hatched); a trial that did not adapt a matrix type has no bar there."""
    kinds = sorted({s.kind for r in results for s in r.spectra})
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(kinds) + 2), 4.5))
    width = 0.8 / max(len(results), 1)
    colors = _colors([r.label for r in results])
    x = np.arange(len(kinds))
    for i, result in enumerate(results):
        groups = by_kind(result.spectra)
        where = [j for j, k in enumerate(kinds) if k in groups]
        ax.bar(x[where] + i * width - 0.4 + width / 2,
               [mean(s.rank90 for s in groups[kinds[j]]) for j in where], width,
               color=colors[result.label], hatch="//" if result.trial.is_lora else None,
               label=result.label, edgecolor="black", lw=0.3)
    _mark_ranks(ax, _lora_ranks(results))
    ax.set_xticks(x, kinds, rotation=30)
    ax.set_ylabel("rank explaining 90% of dW variance")
    ax.set_title("Rank of the weight change, full FT vs LoRA (hatched: LoRA; dotted: LoRA r)")
    _below(fig, *ax.get_legend_handles_labels())
    return _save(fig, path)


def rank90_by_layer(results, path: Path) -> Path:
    """Rank@90% of dW against layer index, one line per trial (mean over the layer's matrices)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = _colors([r.label for r in results])
    all_layers: set[int] = set()
    for i, result in enumerate(results):
        layers = sorted({s.layer for s in result.spectra if s.layer is not None})
        all_layers.update(layers)
        ranks = [mean(s.rank90 for s in result.spectra if s.layer == layer) for layer in layers]
        ax.plot(layers, ranks, marker=MARKERS[i % len(MARKERS)], color=colors[result.label],
                ls="--" if result.trial.is_lora else "-", label=result.label)
    _mark_ranks(ax, _lora_ranks(results))
    if 0 < len(all_layers) <= 16:
        ax.set_xticks(sorted(all_layers))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("mean rank@90% over the layer's matrices")
    ax.set_title("Rank of the weight change per layer (dashed: LoRA; dotted: LoRA r)")
    _below(fig, *ax.get_legend_handles_labels())
    return _save(fig, path)


def _per_index_mean(arrays: Sequence[np.ndarray]) -> np.ndarray:
    n = min(len(a) for a in arrays)
    return np.mean([np.asarray(a)[:n] for a in arrays], axis=0)


def spectra(results, path: Path) -> Path:
    """Three views of the same matrices, each curve a trial's mean over the matrices it changed:
    left, dW's singular values (relative to W_base's largest; log scale, so LoRA's drop
    after rank r shows); middle, how each singular value of W moved (tuned minus base,
    relative to W_base's largest), which the raw spectra hide under their overlap; right,
    the cumulative variance of dW."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    colors = _colors([r.label for r in results])
    floor = np.inf
    for result in results:
        if not result.spectra:
            continue
        color = colors[result.label]
        ls = "--" if result.trial.is_lora else "-"
        scale = [max(float(s.base[0]), 1e-30) if len(s.base) else 1.0 for s in result.spectra]
        delta = _per_index_mean([s.delta / top for s, top in zip(result.spectra, scale)])
        k = np.arange(1, len(delta) + 1)
        floor = min(floor, 1e-6 * max(float(delta[0]), 1e-30))
        left.plot(k, delta, color=color, ls=ls, label=result.label)
        shift = _per_index_mean([(s.tuned - s.base) / top
                                 for s, top in zip(result.spectra, scale)])
        middle.plot(np.arange(1, len(shift) + 1), shift, color=color, ls=ls)
        curve = _per_index_mean([variance_curve(s.delta) for s in result.spectra])
        right.plot(np.arange(1, len(curve) + 1), curve, color=color, ls=ls)
    ranks = _lora_ranks(results)
    for ax in (left, right):
        _mark_ranks(ax, ranks, axis="x")
    left.set_yscale("log")
    if np.isfinite(floor):
        left.set_ylim(bottom=floor)  # below this, a rank-r update's tail is rounding error
    left.set_xlabel("index k")
    left.set_ylabel(r"$\sigma_k(\Delta W)\,/\,\sigma_1(W_{base})$")
    left.set_title("Spectrum of the weight change dW")
    middle.axhline(0, color="grey", lw=0.5)
    middle.set_xlabel("index k")
    middle.set_ylabel(r"$(\sigma_k(W_{tuned}) - \sigma_k(W_{base}))\,/\,\sigma_1(W_{base})$")
    middle.set_title("How W's singular values moved")
    right.axhline(0.9, color="grey", ls=":", lw=1)
    right.set_xlabel("rank k")
    right.set_ylabel("variance of dW explained by top k")
    right.set_title("Cumulative variance of dW")
    _below(fig, *left.get_legend_handles_labels())
    return _save(fig, path)


def intruders(results, path: Path) -> Path:
    """Intruder dimensions per trial (total over its matrices), one horizontal bar each so
    that whole trial labels fit, coloured by method, each bar labelled with its count."""
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.45 * len(results) + 1.5)))
    colors = _colors([r.method for r in results])
    y = np.arange(len(results))
    counts = [r.intruder_count for r in results]
    ax.barh(y, counts, color=[colors[r.method] for r in results], edgecolor="black", lw=0.3)
    for i, result in enumerate(results):
        ax.annotate(f"{counts[i]} in {len(result.intruders)} matrices", (counts[i], i),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(y, [r.label for r in results], fontsize=7)
    ax.invert_yaxis()  # first trial on top, as in the table
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(counts, default=0) * 1.25 + 1)
    ax.set_xlabel("intruder dimensions (all matrices)")
    ax.set_title("Intruder dimensions per trial")
    _below(fig, [Patch(color=color) for color in colors.values()], list(colors))
    return _save(fig, path)
