"""The study's findings as data: ``findings.json``, and the text and notes rendered from it.

One entry per question the study asks (issue 20): (a) full FT learns more than the best
LoRA at equal tokens; (b) at matched learning LoRA forgets less; (c) a higher rank moves
LoRA toward full FT on both axes; (d) the full-FT weight change needs a rank many times
LoRA's for 90% of its variance; (e) the best LoRA LR is several times the best full-FT LR,
with the U-curve visible; and the additions: capacity (*LoRA Without Regret*: no gap far
from capacity), intruder mitigation, and each KL as a forgetting predictor. Each entry has
the numbers, the SE, a verdict (``VERDICTS``), the training tokens it was measured at and
where its numbers come from (MLflow metrics or per-item eval JSON). The report's findings
section and the parent run's MLflow note (``mlflow.note.content``) are rendered from the
JSON, never from the objects that built it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from lfl_ray.analysis import capacity as cap
from lfl_ray.analysis import intruder_mitigation as mitigation
from lfl_ray.analysis.configs import Config, best, compare
from lfl_ray.analysis.kl_forgetting import KlPredictor
from lfl_ray.analysis.matched import POOLED_LORA, MatchedComparison
from lfl_ray.analysis.runs import Sweep
from lfl_ray.analysis.uncertainty import Z, Estimate, Verdict, verdict_of
from lfl_ray.mlflow_schema import EXPERIMENT_NOTE, Metric, Param

FILE = "findings.json"
"""Beside the report, and under ``analysis/`` of the parent run (a schema name that belongs
in ``lfl_ray.mlflow_schema.Artifact``)."""
RUN_NOTE = EXPERIMENT_NOTE
"""The tag the MLflow UI shows as a run's description (the same key as an experiment's)."""
AGREES, DISAGREES, PARTLY = "agrees", "disagrees", "partly agrees"
NOISE, UNTESTED = "not distinguishable", "not tested"
VERDICTS = (AGREES, DISAGREES, PARTLY, NOISE, UNTESTED)
WORDS = {Verdict.AGREES: AGREES, Verdict.DISAGREES: DISAGREES, Verdict.PARTLY: PARTLY,
         Verdict.NOISE: NOISE, Verdict.UNTESTED: UNTESTED}
MANY_TIMES = 5.0
"""(d): "many times the LoRA rank" means at least this factor (the paper's 7B: 10-100x)."""
SEVERAL_TIMES = 3.0
"""(e): "several times" means a LoRA/full best-LR ratio of at least this (paper: ~10x)."""
MITIGATION_STRENGTH = 0.75
"""The strength the intruder finding quotes (peft's default, Shuttleworth et al.'s ~0.7)."""


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


@dataclass
class Finding:
    """One question of the study, answered from this sweep's numbers."""

    id: str
    title: str
    claim: str
    """What the paper (or later work) says."""
    verdict: str
    """One of ``VERDICTS``."""
    text: str
    """One or two sentences with the numbers."""
    value: float | None = None
    """The headline number (its meaning is in ``text`` and ``numbers``)."""
    se: float | None = None
    tokens: list[int] = field(default_factory=list)
    """Training tokens the numbers were measured at."""
    numbers: dict = field(default_factory=dict)
    source: str = ""
    """Where the numbers come from (MLflow metrics, per-item eval JSON)."""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} must be one of {VERDICTS}")
        self.value, self.se = _finite(self.value), _finite(self.se)


def _est(e: Estimate) -> dict:
    return {"value": _finite(e.value), "se": _finite(e.se), "how": e.how}


def combine(signs: Sequence[int], expected: int = 1) -> str:
    """The finding's verdict from the signs of the differences the paper predicts."""
    return WORDS[verdict_of(signs, expected)]


def _plain_full(configs: list[Config]) -> list[Config]:
    full = [c for c in configs if not c.is_lora]
    return [c for c in full if c.family == "full"] or full


def _lora(configs: list[Config]) -> list[Config]:
    return [c for c in configs if c.is_lora]


ITEMS_SOURCE = ("MLflow metrics Headline/learning, Headline/forgetting of the trial runs; SEs paired over the "
                "per-item evals/milestone_<tokens>.json")


def finding_a(sweep: Sweep, configs: list[Config]) -> Finding:
    claim = "full FT reaches a better target metric than the best LoRA at equal tokens"
    full, lora = best(_plain_full(configs)), best(_lora(configs))
    if full is None or lora is None:
        return Finding("a", "Full FT learns more", claim, UNTESTED,
                       "The sweep lacks full-FT or LoRA trials.", source=ITEMS_SOURCE)
    diff, tokens = compare(sweep, full, lora, Metric.LEARNING)
    state = {1: "learns more than", -1: "learns less than", 0: "is not distinguishable from"}[diff.sign()]
    text = (f"Best full FT ({full.label}) {state} the best LoRA ({lora.label}): learning "
            f"full minus LoRA {diff.text()} ({diff.how})" + (f" at {tokens:,} tokens." if tokens else "."))
    return Finding("a", "Full FT learns more", claim, combine([diff.sign()], 1), text,
                   diff.value, diff.se, [tokens] if tokens else [],
                   {"full": full.label, "lora": lora.label, "difference": _est(diff),
                    "full_learning": _est(full.estimate(Metric.LEARNING, tokens)),
                    "lora_learning": _est(lora.estimate(Metric.LEARNING, tokens))},
                   ITEMS_SOURCE)


def finding_b(matched: Sequence[MatchedComparison]) -> Finding:
    claim = "at matched learning, LoRA forgets less than full FT"
    pooled = next((c for c in matched if c.a == POOLED_LORA), None)
    source = ("MLflow Headline/learning, Headline/forgetting of every milestone; SE from a paired bootstrap over the "
              "per-item evals/milestone_<tokens>.json and the parent's evals/base.json")
    if pooled is None:
        return Finding("b", "LoRA forgets less at matched learning", claim, UNTESTED,
                       "The sweep lacks full-FT or LoRA trials.", source=source)
    def level(lv) -> dict:
        return {"learning": lv.learning, "forgetting": lv.forgetting_a,
                "reference_forgetting": lv.forgetting_b, "difference": _est(lv.difference)}

    families = [{"family": c.a, "vs": c.b, "reach": list(c.reach),
                 "mean": level(c.mean) if c.mean else None,
                 "levels": [level(lv) for lv in c.levels], "reason": c.reason} for c in matched]
    head = pooled.headline
    if head is None:
        return Finding("b", "LoRA forgets less at matched learning", claim, UNTESTED,
                       f"No matched learning level: {pooled.reason}.", tokens=list(pooled.tokens),
                       numbers={"families": families}, source=source)
    sign = head.difference.sign()
    state = {-1: "forgets less than", 1: "forgets more than", 0: "is not distinguishable from"}[sign]
    at = "; ".join(f"{lv.learning:+.3f}: {lv.difference.text()}" for lv in pooled.levels)
    opposite = [lv for lv in pooled.levels if sign and lv.difference.sign() == -sign]
    verdict = PARTLY if opposite else combine([sign], -1)
    text = (f"Over matched learning 0 to {head.learning:+.3f} (the most both curves reach), LoRA "
            f"{state} full FT: forgetting LoRA minus full, averaged over that range, "
            f"{head.difference.text()} ({head.difference.how}); at learning {at}. Curves over "
            f"milestones {pooled.tokens[0]:,}-{pooled.tokens[-1]:,} tokens and every learning rate"
            + (f"; the sign turns at the high end, where LoRA {'forgets more' if sign < 0 else 'forgets less'}."
               if opposite else "."))
    return Finding("b", "LoRA forgets less at matched learning", claim, verdict,
                   text, head.difference.value, head.difference.se, list(pooled.tokens),
                   {"matched_learning_range": [0.0, head.learning], "lora_forgetting": head.forgetting_a,
                    "full_forgetting": head.forgetting_b, "families": families}, source)


def finding_c(sweep: Sweep, configs: list[Config],
              capacities: Sequence[cap.TrialCapacity]) -> Finding:
    claim = "a higher rank moves LoRA toward full FT on both axes (learns more, forgets more)"
    loras = _lora(configs)
    ranks = sorted({c.rank for c in loras if c.rank})
    all_targets = [c for c in loras if c.targets == "all"]
    if all(any(c.rank == r for c in all_targets) for r in ranks):
        loras = all_targets
    state_of = {c.trial.trial_id: c.state for c in capacities}
    if len(ranks) < 2:
        return Finding("c", "Higher rank moves toward full FT", claim, UNTESTED,
                       f"The sweep tried {len(ranks)} LoRA rank(s); two are needed.",
                       numbers={"ranks": ranks}, source=ITEMS_SOURCE)
    low = best([c for c in loras if c.rank == ranks[0]])
    high = best([c for c in loras if c.rank == ranks[-1]])
    learn, tokens = compare(sweep, high, low, Metric.LEARNING)
    forget, _ = compare(sweep, high, low, Metric.FORGETTING, tokens)
    verdict = combine([learn.sign(), forget.sign()], 1)
    low_state = state_of.get(low.first.trial_id, "unknown")
    text = (f"r={ranks[-1]} minus r={ranks[0]}: learning {learn.text()}, forgetting "
            f"{forget.text()} ({learn.how})" + (f" at {tokens:,} tokens" if tokens else "") +
            f". The lowest rank is {low_state} on the capacity axis"
            + ("." if low_state == cap.AT else " (a rank low enough to be capacity-limited would test "
               "this better)."))
    return Finding("c", "Higher rank moves toward full FT", claim, verdict, text, learn.value,
                   learn.se, [tokens] if tokens else [],
                   {"low_rank": ranks[0], "high_rank": ranks[-1], "low": low.label, "high": high.label,
                    "learning_difference": _est(learn), "forgetting_difference": _est(forget),
                    "lowest_rank_capacity": low_state}, ITEMS_SOURCE)


def finding_d(weights: Sequence | None, lora_ranks: Sequence[int],
              fraction: float = 0.9) -> Finding:
    claim = (f"the full-FT weight change needs a rank for {fraction:.0%} of its variance many "
             f"times (>= {MANY_TIMES:g}x) the LoRA rank")
    source = "SVD of dW = W_tuned - W_base from the trials' checkpoints (tag lfl.checkpoint)"
    if not weights:
        return Finding("d", "Full-FT weight change is high rank", claim, UNTESTED,
                       "No checkpoint was analysed (weights off, or no checkpoint on this machine).",
                       source=source)
    full = [w for w in weights if not w.trial.is_lora]
    # The ranks of the LoRA checkpoints analysed beside it, else every rank of the sweep.
    ranks = sorted({w.trial.rank for w in weights if w.trial.is_lora and w.trial.rank}
                   or set(lora_ranks))
    if not full or not ranks:
        return Finding("d", "Full-FT weight change is high rank", claim, UNTESTED,
                       "Needs a full-FT checkpoint and LoRA ranks to compare with.", source=source)
    values = [s.rank90 for w in full for s in w.spectra]
    r = ranks[-1]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    ratio, se = mean / r, sd / math.sqrt(n) / r if n > 1 else math.nan
    if math.isfinite(se) and ratio - Z * se >= MANY_TIMES:
        verdict = AGREES
    elif math.isfinite(se) and ratio + Z * se < MANY_TIMES:
        verdict = DISAGREES
    elif not math.isfinite(se):
        verdict = AGREES if ratio >= MANY_TIMES else DISAGREES
    else:
        verdict = NOISE
    tokens = sorted({w.trial.trained_tokens for w in full if w.trial.trained_tokens})
    text = (f"Full FT's dW needs rank {mean:.1f} on average (over {n} matrices) for "
            f"{fraction:.0%} of its variance: {ratio:.1f} ± {se:.1f} times the highest LoRA rank "
            f"r={r}.")
    return Finding("d", "Full-FT weight change is high rank", claim, verdict, text, ratio, se,
                   tokens, {"mean_rank": mean, "matrices": n, "lora_rank": r, "fraction": fraction},
                   source)


def _lr_curve(sweep: Sweep, group: list[Config]) -> dict:
    """One LR group's curve at the furthest shared milestone: learning per LR, the best LR,
    the LRs tied with it (within 2 paired SE), and whether the U is visible: the tie does not
    reach either end of the grid, so an LR below it and one above it are each worse than the
    best beyond 2 SE. A flat top of two or three LRs is still a U; its best LR is then a range."""
    group = sorted([c for c in group if c.lr], key=lambda c: c.lr)
    top = best(group)
    out = {"lrs": [c.lr for c in group], "best_lr": top.lr if top else None,
           "learning": [_est(c.estimate(Metric.LEARNING)) for c in group], "versus_best": [],
           "tied_lrs": [top.lr] if top else []}
    if top is None or len(group) < 3:
        out.update(u_curve=False, why=f"{len(group)} learning rate(s); a U needs three or more")
        return out
    tied = []
    for c in group:
        if c is top:
            tied.append(c.lr)
            continue
        diff, tokens = compare(sweep, top, c, Metric.LEARNING)
        out["versus_best"].append({"lr": c.lr, "best_minus_it": _est(diff), "tokens": tokens})
        if diff.sign() <= 0:  # not worse than the best beyond 2 SE: tied with it
            tied.append(c.lr)
    out["tied_lrs"] = tied
    low_end, high_end = group[0].lr in tied, group[-1].lr in tied
    out["u_curve"] = not (low_end or high_end)
    if low_end or high_end:
        ends = [name for name, hit in (("lowest", low_end), ("highest", high_end)) if hit]
        out["why"] = (f"the {' and '.join(ends)} LR of the grid is within noise of the best "
                      f"({top.lr:.0e}): widen the grid")
    return out


def _without_lr(label: str) -> str:
    import re

    return re.sub(rf" {Param.LR}=\S+", "", label)


def finding_e(sweep: Sweep, configs: list[Config]) -> Finding:
    claim = (f"the best LoRA LR is several times (>= {SEVERAL_TIMES:g}x; paper ~10x) the best "
             "full-FT LR, from an LR grid with the U-curve visible")
    full, lora = best(_plain_full(configs)), best(_lora(configs))
    if full is None or lora is None or not full.lr or not lora.lr:
        return Finding("e", "LoRA's best LR is several times full FT's", claim, UNTESTED,
                       "The sweep lacks full-FT or LoRA trials with a learning rate.",
                       source=ITEMS_SOURCE)
    curves = {}
    for name, top in (("full", full), ("lora", lora)):
        group = [c for c in configs if _without_lr(c.label) == _without_lr(top.label)]
        curves[name] = _lr_curve(sweep, group)
    ratio = lora.lr / full.lr
    # The best LR of a flat top is any LR tied with it: the ratio is as uncertain as both ties.
    low = min(curves["lora"]["tied_lrs"]) / max(curves["full"]["tied_lrs"])
    high = max(curves["lora"]["tied_lrs"]) / min(curves["full"]["tied_lrs"])
    visible = curves["full"]["u_curve"] and curves["lora"]["u_curve"]
    if visible:
        verdict = (AGREES if low >= SEVERAL_TIMES else DISAGREES if high <= 1
                   else PARTLY if ratio >= SEVERAL_TIMES else NOISE)
    else:
        verdict = UNTESTED if any(len(c["lrs"]) < 3 for c in curves.values()) else NOISE
    whys = [f"{n}: {c['why']}" for n, c in curves.items() if not c["u_curve"]]
    span = "" if low == high else f" (LRs tied with the best within 2 SE give {low:.3g}x-{high:.3g}x)"
    text = (f"Best LR: full FT {full.lr:.0e} ({full.label}), LoRA {lora.lr:.0e} ({lora.label}); "
            f"ratio {ratio:.3g}x{span}." + (" U-curve visible on both grids." if visible else
                                            " U-curve not visible (" + "; ".join(whys) + "), so the "
                                            "ratio is not settled."))
    return Finding("e", "LoRA's best LR is several times full FT's", claim, verdict, text, ratio,
                   None, [full.final_tokens], {"ratio": ratio, "ratio_range": [low, high],
                                               "full": curves["full"], "lora": curves["lora"]},
                   ITEMS_SOURCE)


def finding_capacity(sweep: Sweep, configs: list[Config],
                     capacities: Sequence[cap.TrialCapacity]) -> Finding:
    claim = ("LoRA Without Regret: LoRA far from capacity-limited shows no learning gap to full "
             "FT (with its LR tuned)")
    place = cap.placement(capacities)
    source = ("trainable_params metric (else computed from the model config, rank and targets); "
              "tokens from the tokens metric / last train_loss step / last milestone")
    full = best(_plain_full(configs))
    by_trial = {c.trial.trial_id: c for c in capacities}
    rows = []
    for name in sorted({_without_lr(c.label) for c in _lora(configs)}):
        config = best([c for c in _lora(configs) if _without_lr(c.label) == name])
        c = by_trial.get(config.first.trial_id)
        entry = {"config": config.label, "trainable_params": c.trainable_params if c else None,
                 "tokens": c.tokens if c else None,
                 "tokens_per_param": _finite(c.tokens_per_param) if c else None,
                 "capacity_use": _finite(c.capacity_use) if c else None,
                 "state": c.state if c else "unknown"}
        if full is not None:
            gap, tokens = compare(sweep, full, config, Metric.LEARNING)
            entry.update(gap=_est(gap), gap_tokens=tokens)
        rows.append(entry)
    numbers = {"placement": place, "lora_configs": rows,
               "bits_per_param": cap.BITS_PER_PARAM, "bits_per_token": cap.BITS_PER_TOKEN,
               "far_below": cap.FAR_BELOW, "limited_from": cap.LIMITED}
    far = [r for r in rows if r["state"] == cap.FAR and "gap" in r]
    tokens = sorted({r["tokens"] for r in rows if r["tokens"]})
    if full is None or not far:
        return Finding("capacity", "Capacity", claim, UNTESTED, place["text"] + (
            " No full-FT trial to measure a gap against." if full is None else
            " No LoRA configuration is far from capacity-limited, so the prediction is not tested."),
            tokens=tokens, numbers=numbers, source=source)
    gaps = [Estimate(r["gap"]["value"], r["gap"]["se"] if r["gap"]["se"] is not None else math.nan)
            for r in far]
    real = [g.sign() > 0 for g in gaps]
    verdict = AGREES if not any(real) else DISAGREES if all(real) else PARTLY
    text = (place["text"] + f" Of {len(far)} LoRA configurations far from capacity, "
            f"{sum(real)} learn less than full FT beyond 2 SE.")
    return Finding("capacity", "Capacity", claim, verdict, text, place.get("capacity_use_max"),
                   None, tokens, numbers, source)


def finding_mitigation(summary: dict | None) -> Finding:
    claim = ("Shuttleworth et al.: scaling intruder dimensions down lowers forgetting at little "
             "cost in learning")
    source = ("peft reduce_intruder_dimension on each LoRA checkpoint; per-item eval JSON on the "
              "trial runs under evals/intruder_mitigation/; summary analysis/intruder_mitigation.json")
    pairs = mitigation.points_from_summary(summary)
    if not pairs:
        bare = [t for t in (summary or {}).get("trials", []) if not t.get("points")]
        if bare:
            names = ", ".join(t["label"] for t in bare)
            return Finding("intruders", "Intruder mitigation", claim, UNTESTED,
                           f"Nothing to scale: {names} has no intruder dimensions (top "
                           f"{summary['settings'].get('top_k')} singular vectors, |cos| < "
                           f"{summary['settings'].get('epsilon')}), so no scaled adapter was evaluated. "
                           "The report's intruder table shows which checkpoints have any.",
                           tokens=[t["tokens"] for t in bare if t.get("tokens")],
                           numbers={"trials": [t["trial_id"] for t in bare], "intruders_before": 0},
                           source=source)
        return Finding("intruders", "Intruder mitigation", claim, UNTESTED,
                       "Not run (lfl-ray analyse intruder-mitigation, or report "
                       "--intruder-mitigation).", source=source)
    top = max((t for t, _ in pairs), key=lambda t: t.get("learning") or -math.inf)
    point = min((p for t, p in pairs if t is top),
                key=lambda p: abs(p["strength"] - MITIGATION_STRENGTH))
    df = Estimate(point["delta_forgetting"] if point["delta_forgetting"] is not None else math.nan,
                  point["delta_forgetting_se"] if point["delta_forgetting_se"] is not None else math.nan)
    text = mitigation.sentence(top, point) + " " + mitigation.cost_text(summary)
    return Finding("intruders", "Intruder mitigation", claim, combine([df.sign()], -1), text,
                   df.value, df.se, [top["tokens"]] if top.get("tokens") else [],
                   {"trial": top["trial_id"], "strength": point["strength"],
                    "delta_forgetting": point["delta_forgetting"],
                    "delta_forgetting_se": point["delta_forgetting_se"],
                    "delta_learning": point["delta_learning"],
                    "delta_learning_se": point["delta_learning_se"],
                    "intruders_before": top["intruders_before"], "intruders_after": point["intruders"],
                    "evaluations": summary.get("evaluations"), "seconds": summary.get("seconds")},
                   source)


KL_CLAIMS = {"heldout_kl": ("kl_target", "Target-task KL predicts forgetting",
                            "RL's Razor: forgetting tracks KL(base || tuned) on the new task's data"),
             "drift_kl": ("kl_general", "General-text KL predicts forgetting",
                          "KL(base || tuned) on general text tracks forgetting")}


def finding_kl(metric: str, predictors: dict[str, KlPredictor]) -> Finding:
    fid, title, claim = KL_CLAIMS[metric]
    p = predictors.get(metric)
    source = f"MLflow metrics {metric} and forgetting at each trial's last milestone"
    if p is None or not p.tested:
        return Finding(fid, title, claim, UNTESTED, f"Not tested: {p.reason if p else 'absent'}.",
                       source=source)
    text = (f"Spearman rho between {metric} and forgetting across {p.trials} trials: "
            f"{p.rho.text()} ({p.rho.how}).")
    numbers = {"rho": _est(p.rho), "trials": p.trials}
    diff = predictors.get("difference")
    if diff is not None and diff.tested:
        numbers["heldout_minus_drift"] = _est(diff.rho)
        if metric == "heldout_kl":
            text += f" Target-task minus general-text rho: {diff.rho.text()}."
    return Finding(fid, title, claim, combine([p.rho.sign()], 1), text, p.rho.value,
                   p.rho.se, list(p.tokens), numbers, source)


def build(sweep: Sweep, configs: list[Config], *, matched: Sequence[MatchedComparison],
          capacities: Sequence[cap.TrialCapacity], predictors: dict[str, KlPredictor],
          weights: Sequence | None = None, mitigation_summary: dict | None = None,
          fraction: float = 0.9) -> dict:
    """The findings document (what ``findings.json`` holds)."""
    findings = [finding_a(sweep, configs), finding_b(matched),
                finding_c(sweep, configs, capacities), finding_d(weights, [c.rank for c in _lora(configs) if c.rank], fraction),
                finding_e(sweep, configs), finding_capacity(sweep, configs, capacities),
                finding_mitigation(mitigation_summary),
                finding_kl("heldout_kl", predictors), finding_kl("drift_kl", predictors)]
    return {"experiment": sweep.name, "parent_run_id": sweep.parent_run_id,
            "tracking_uri": sweep.tracking_uri, "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "z": Z, "verdicts": list(VERDICTS),
            "findings": mitigation.finite_or_none([asdict(f) for f in findings])}


def write(document: dict, out_dir: str | Path) -> Path:
    path = Path(out_dir) / FILE
    path.write_text(json.dumps(document, indent=1))
    return path


def _value(f: dict) -> str:
    if f.get("value") is None:
        return "-"
    se = f" ± {f['se']:.3g}" if f.get("se") is not None else ""
    return f"{f['value']:+.3g}{se}"


def _tokens(f: dict) -> str:
    tokens = f.get("tokens") or []
    if not tokens:
        return "-"
    return f"{tokens[0]:,}" if len(tokens) == 1 else f"{tokens[0]:,}-{tokens[-1]:,}"


def headline_rows(document: dict) -> list[tuple]:
    return [(f["id"], f["title"], _value(f), f["verdict"], _tokens(f))
            for f in document.get("findings", [])]


HEADLINE_HEADER = ("", "finding", "value ± SE", "verdict", "tokens")


def markdown(document: dict) -> str:
    """The findings as markdown: the headline table, then each finding's text and claim."""
    from lfl_ray.analysis.tables import markdown_table

    lines = [f"## Findings of `{document.get('experiment')}`", "",
             markdown_table(HEADLINE_HEADER, headline_rows(document)), ""]
    for f in document.get("findings", []):
        lines += [f"**({f['id']}) {f['title']}: {f['verdict']}.** {f['text']}",
                  f"*Claim:* {f['claim']}.", ""]
    return "\n".join(lines)


def note(document: dict, report_hint: str = "") -> str:
    """The parent run's MLflow note: one line per finding (a list, since the MLflow UI draws
    markdown tables without cell padding)."""
    text = [f"**lfl-ray findings** ({document.get('generated', '')}; differences count as real "
            f"beyond {document.get('z', Z):g} SE)", ""]
    for fid, title, value, verdict, tokens in headline_rows(document):
        text.append(f"- **({fid}) {title}**: {verdict}; {value}" + (f" at {tokens} tokens" if tokens != "-" else ""))
    if report_hint:
        text += ["", report_hint]
    return "\n".join(text)


def html(document: dict) -> str:
    """The findings section of the report, rendered from the JSON document."""
    import html as escape

    from lfl_ray.analysis.tables import html_table

    parts = [html_table(HEADLINE_HEADER, headline_rows(document))]
    for f in document.get("findings", []):
        css = "agrees" if f["verdict"] == AGREES else "disagrees" if f["verdict"] == DISAGREES else "other"
        parts.append(f"<p><strong>({escape.escape(f['id'])}) {escape.escape(f['title'])}:</strong> "
                     f"<span class='verdict {css}'>{escape.escape(f['verdict'])}.</span> "
                     f"{escape.escape(f['text'])}<br><span class=note>Claim: "
                     f"{escape.escape(f['claim'])}. Source: {escape.escape(f['source'])}.</span></p>")
    return "\n".join(parts)


def set_note(sweep: Sweep, document: dict, report_hint: str = "") -> bool:
    """Put the headline table on the parent run as its MLflow note; False without a parent.
    (A writer that belongs in ``lfl_ray.mlflow_schema``.)"""
    if sweep.parent_run_id is None:
        return False
    from lfl_ray.mlflow_schema import client
    from lfl_ray.tracking import with_retries

    text = note(document, report_hint)
    with_retries(lambda: client(sweep.tracking_uri).set_tag(sweep.parent_run_id, RUN_NOTE, text),
                 "set run note")
    return True
