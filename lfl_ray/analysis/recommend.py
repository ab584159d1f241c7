"""Recommendations derived from one sweep's numbers, each with its uncertainty and a verdict
against the paper's claims (Biderman et al. 2024).

Every sentence is computed from the data: when this sweep shows the opposite of the paper,
the advice says the opposite. Differences are ``a - b ± SE`` (seed spread when both sides
have seeds, else paired over the same eval items, else unpaired); ``|diff| < 2 SE`` reads
"not distinguishable here". "Best" means highest ``learning`` among the configurations that
trained longest, compared at the largest milestone both sides reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from lfl_ray.analysis.configs import Config, best, compare, group_configs
from lfl_ray.analysis.pareto import best_within_budget, front, points
from lfl_ray.analysis.runs import Sweep
from lfl_ray.analysis.tables import markdown_table
from lfl_ray.analysis.uncertainty import Estimate, Verdict, verdict_of
from lfl_ray.mlflow_schema import Metric, Param, is_derived_metric

AGREES, DISAGREES, PARTLY = "agrees", "disagrees", "partly agrees"
NOISE, UNTESTED = "not distinguishable here", "not tested here"
VERDICTS = (AGREES, DISAGREES, PARTLY, NOISE, UNTESTED)
WORDS = {Verdict.AGREES: AGREES, Verdict.DISAGREES: DISAGREES, Verdict.PARTLY: PARTLY,
         Verdict.NOISE: NOISE, Verdict.UNTESTED: UNTESTED}
PAPER_LR_RATIO = (3.0, 30.0)
"""A LoRA/full best-LR ratio in this range counts as the paper's "about 10x"."""


@dataclass(frozen=True)
class Recommendation:
    """One piece of advice with the numbers behind it and how it compares with the paper."""

    topic: str
    advice: str
    """One or two sentences, computed from this sweep's numbers."""
    evidence: tuple[str, ...]
    """Lines with the numbers and their SEs."""
    paper: str | None
    """The paper's claim this checks, if any."""
    verdict: str
    """One of VERDICTS: how this sweep's data relates to ``paper``."""
    table: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None = None
    """Optional (header, rows) with the per-group numbers."""


def combine(signs: Iterable[int], expected: int = 1) -> str:
    """Verdict from the signs of several real-or-noise differences the paper predicts."""
    return WORDS[verdict_of(list(signs), expected)]


def _more_less(estimate: Estimate, more: str, less: str, same: str) -> str:
    sign = estimate.sign()
    return more if sign > 0 else less if sign < 0 else same


def _at(tokens) -> str:
    return f" at {tokens:,} tokens" if tokens else ""


def _lr(value) -> str:
    return f"{value:.0e}" if value else "?"


def _without(label: str, key: str) -> str:
    return re.sub(rf" {key}=\S+", "", label)


def _plain_full(configs: list[Config]) -> list[Config]:
    full = [c for c in configs if not c.is_lora]
    plain = [c for c in full if c.family == "full"]
    return plain or full


def _lora(configs: list[Config]) -> list[Config]:
    return [c for c in configs if c.is_lora]


def _lr_groups(configs: list[Config]) -> dict[str, list[Config]]:
    groups: dict[str, list[Config]] = {}
    for config in configs:
        groups.setdefault(_without(config.label, Param.LR), []).append(config)
    return groups


def _ranked(configs: list[Config]) -> list[Config]:
    """Configurations that trained longest, best learning first."""
    furthest = max(c.final_tokens for c in configs)
    finalists = [c for c in configs if c.final_tokens == furthest]
    return sorted(finalists, key=lambda c: -c.estimate(Metric.LEARNING).value)


def _ratio_verdict(ratio: float) -> str:
    low, high = PAPER_LR_RATIO
    return AGREES if low <= ratio <= high else PARTLY if ratio > 1 else DISAGREES


def learning_rates(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """Best LR per method/rank group, and the LoRA/full ratio of best LRs."""
    rows, ties = [], {}
    for name, members in _lr_groups(configs).items():
        ranked = [c for c in _ranked(members) if c.lr]
        if not ranked:
            continue
        top = ranked[0]
        tied = [top.lr]
        runner = "-"
        if len(ranked) > 1:
            diff, tokens = compare(sweep, top, ranked[1], Metric.LEARNING)
            state = "" if diff.distinguishable() else " (not distinguishable here)"
            runner = f"{_lr(ranked[1].lr)}: {diff.text()} ({diff.how}){state}"
            tied += [c.lr for c in ranked[1:]
                     if not compare(sweep, top, c, Metric.LEARNING)[0].distinguishable()]
        ties[name] = tied
        rows.append((name, _lr(top.lr), top.estimate(Metric.LEARNING).plain(), runner))
    header = ("group", "best lr", "learning", "best minus next lr")
    table = (header, tuple(rows))
    full, lora = best(_plain_full(configs)), best(_lora(configs))
    if full is None or lora is None or not full.lr or not lora.lr:
        return Recommendation("Learning rate", "This sweep lacks full FT or LoRA trials with a "
                              "learning rate, so no LoRA/full LR ratio can be given.", (),
                              "the best LoRA LR is about 10x the best full-FT LR", UNTESTED, table)
    ratio = lora.lr / full.lr
    verdict = _ratio_verdict(ratio)
    # If a runner-up LR within noise would put the ratio in another category, say so.
    alternatives = {_ratio_verdict(lo / fu)
                    for lo in ties.get(_without(lora.label, Param.LR), [lora.lr])
                    for fu in ties.get(_without(full.label, Param.LR), [full.lr])}
    evidence = [f"best full FT ({full.label}): lr {_lr(full.lr)}, learning "
                f"{full.estimate('learning').plain()}",
                f"best LoRA ({lora.label}): lr {_lr(lora.lr)}, learning "
                f"{lora.estimate('learning').plain()}",
                f"ratio LoRA/full of the best LRs: {ratio:.3g}x"]
    if len(alternatives) > 1:
        evidence.append("learning rates within noise of the best give other LoRA/full ratios: "
                        "this sweep does not settle the ratio")
        verdict = NOISE
    direction = "higher" if ratio > 1 else "lower" if ratio < 1 else "the same as"
    advice = (f"Use lr {_lr(full.lr)} for full FT and {_lr(lora.lr)} for LoRA: LoRA's best LR is "
              f"{ratio:.3g}x full FT's ({direction}).")
    return Recommendation("Learning rate", advice, tuple(evidence),
                          "the best LoRA LR is about 10x the best full-FT LR", verdict, table)


def lora_vs_full(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """Best LoRA against best full FT: learning and forgetting, paired where possible."""
    claim = "LoRA learns less and forgets less than full finetuning"
    full, lora = best(_plain_full(configs)), best(_lora(configs))
    if full is None or lora is None:
        return Recommendation("LoRA vs full FT", "This sweep lacks full FT or LoRA trials.", (),
                              claim, UNTESTED)
    learn, tokens = compare(sweep, lora, full, Metric.LEARNING)
    forget, _ = compare(sweep, lora, full, Metric.FORGETTING, tokens)
    learns = _more_less(learn, "learns more", "learns less", "learns about as much")
    forgets = _more_less(forget, "forgets more", "forgets less", "forgets about as much")
    advice = (f"Compared with full FT ({full.label}){_at(tokens)}, LoRA ({lora.label}) {learns} "
              f"and {forgets}.")
    if learn.sign() > 0 and forget.sign() <= 0:
        advice += " LoRA is the better choice on both counts in this sweep."
    elif learn.sign() < 0 and forget.sign() < 0:
        advice += " Choose by how much forgetting you can afford (see the budgets below)."
    elif learn.sign() < 0 and forget.sign() > 0:
        advice += " Full FT is the better choice on both counts in this sweep."
    elif learn.sign() < 0:
        advice += " Full FT learns more here at no forgetting cost this sweep can measure."
    evidence = (f"learning, LoRA minus full: {learn.text()} ({learn.how})",
                f"forgetting, LoRA minus full: {forget.text()} ({forget.how})")
    rows = []
    for rank in sorted({c.rank for c in _lora(configs) if c.rank}):
        candidate = best([c for c in _lora(configs) if c.rank == rank])
        dl, t = compare(sweep, candidate, full, Metric.LEARNING)
        df, _ = compare(sweep, candidate, full, Metric.FORGETTING, t)
        rows.append((f"r={rank}", candidate.label, f"{t:,}" if t else "-", dl.text(), df.text()))
    table = (("rank", "best LoRA config", "tokens", "learning vs full", "forgetting vs full"),
             tuple(rows))
    return Recommendation("LoRA vs full FT", advice, evidence, claim,
                          combine([learn.sign(), forget.sign()], expected=-1), table)


def target_modules(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """All modules against attention-only (and MLP-only) at each rank."""
    claim = "targeting all modules beats MLP-only, which beats attention-only"
    rows, signs, wins = [], [], []
    for rank in sorted({c.rank for c in _lora(configs) if c.rank}):
        at_rank = [c for c in _lora(configs) if c.rank == rank]
        all_best = best([c for c in at_rank if c.targets == "all"])
        for other in ("attention", "mlp"):
            other_best = best([c for c in at_rank if c.targets == other])
            if all_best is None or other_best is None:
                continue
            diff, tokens = compare(sweep, all_best, other_best, Metric.LEARNING)
            forget, _ = compare(sweep, all_best, other_best, Metric.FORGETTING, tokens)
            signs.append(diff.sign())
            wins.append((rank, other, diff))
            rows.append((f"r={rank}", f"all - {other}", f"{tokens:,}" if tokens else "-",
                         f"{diff.text()} ({diff.how})", forget.text()))
    table = (("rank", "comparison", "tokens", "learning difference", "forgetting difference"),
             tuple(rows))
    if not wins:
        return Recommendation("Target modules", "This sweep did not compare target sets at a "
                              "matched rank.", (), claim, UNTESTED, table)
    parts = []
    for rank, other, diff in wins:
        verb = _more_less(diff, f"beats {other}-only", f"loses to {other}-only",
                          f"is not distinguishable from {other}-only")
        parts.append(f"at r={rank} all modules {verb} ({diff.text()})")
    verdict = combine(signs, expected=1)
    losers_to = sorted({other for _, other, diff in wins if diff.sign() < 0})
    lead = {AGREES: "Target all modules", DISAGREES: f"Target {' or '.join(losers_to)} only",
            NOISE: "The target set made no measurable difference"}.get(
        verdict, "The best target set depends on the rank")
    return Recommendation("Target modules", f"{lead}: " + "; ".join(parts) + " (learning).",
                          (), claim, verdict, table)


def rank_trend(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """How the learning gap to full FT changes with the LoRA rank."""
    claim = "higher rank learns more, closing the gap to full FT"
    full = best(_plain_full(configs))
    loras = _lora(configs)
    ranks = sorted({c.rank for c in loras if c.rank})
    matched = [c for c in loras if c.targets == "all"]
    if all(any(c.rank == r for c in matched) for r in ranks):
        loras = matched
    per_rank = {r: best([c for c in loras if c.rank == r]) for r in ranks}
    rows = []
    for rank, config in per_rank.items():
        if full is not None:
            gap, tokens = compare(sweep, full, config, Metric.LEARNING)
            rows.append((f"r={rank}", config.label, f"{tokens:,}" if tokens else "-",
                         config.estimate(Metric.LEARNING).plain(), f"{gap.text()} ({gap.how})"))
        else:
            rows.append((f"r={rank}", config.label, "-", config.estimate(Metric.LEARNING).plain(), "-"))
    table = (("rank", "best LoRA config", "tokens", "learning", "gap: full minus LoRA"),
             tuple(rows))
    if len(ranks) < 2:
        return Recommendation("Rank", "This sweep tried fewer than two LoRA ranks.", (), claim,
                              UNTESTED, table)
    low, high = per_rank[ranks[0]], per_rank[ranks[-1]]
    diff, tokens = compare(sweep, high, low, Metric.LEARNING)
    forget, _ = compare(sweep, high, low, Metric.FORGETTING, tokens)
    change = _more_less(diff, "learns more than", "learns less than", "learns about as much as")
    advice = (f"r={ranks[-1]} {change} r={ranks[0]}: {diff.text()} ({diff.how}){_at(tokens)}"
              f"; its forgetting differs by {forget.text()}.")
    if diff.sign() > 0:
        advice += " Prefer the higher rank if its extra forgetting is affordable."
    elif diff.sign() < 0:
        advice += " The lower rank is enough here."
    return Recommendation("Rank", advice, (), claim, combine([diff.sign()], 1), table)


def forgetting_budgets(sweep: Sweep, configs: list[Config], max_budgets: int = 6) -> Recommendation:
    """What to use under each forgetting budget (points of the Pareto front)."""
    claim = "LoRA sits at the learns-less/forgets-less end of one trade-off curve, full FT at the other"
    pts = points(t for c in configs for t in c.trials)
    fr = front(pts)
    if not fr:
        return Recommendation("Forgetting budget", "No point has both learning and forgetting.",
                              (), claim, UNTESTED)
    budgets = sorted({p.forgetting for p in fr})
    if len(budgets) > max_budgets:
        step = (len(budgets) - 1) / (max_budgets - 1)
        budgets = [budgets[round(i * step)] for i in range(max_budgets)]
    rows = []
    for budget in budgets:
        p = best_within_budget(pts, budget)
        rows.append((f"{budget:+.3f}", p.label, f"{p.tokens:,}",
                     f"{p.learning:+.3f}", f"{p.forgetting:+.3f}"))
    lines = tuple(f"if you can afford forgetting of at most {b}, use {label} at {t} tokens "
                  f"(learning {l}, forgetting {f})" for b, label, t, l, f in rows)
    methods = {p.trial.is_lora for p in pts}
    if methods != {True, False}:
        verdict = UNTESTED
    else:
        low_end, high_end = fr[0].trial.is_lora, fr[-1].trial.is_lora
        verdict = AGREES if low_end and not high_end else DISAGREES if high_end and not low_end \
            else PARTLY
    advice = (f"Lowest forgetting on the front: {fr[0].label} ({fr[0].forgetting:+.3f}); "
              f"most learning: {fr[-1].label} ({fr[-1].learning:+.3f}).")
    return Recommendation("Forgetting budget", advice, lines, claim, verdict)


def alpha_choice(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """alpha = 2r against the other alphas tried at the same rank, targets and LR."""
    claim = "alpha = 2r is a good default"
    groups: dict[str, list[Config]] = {}
    for config in _lora(configs):
        groups.setdefault(_without(config.label, "alpha"), []).append(config)
    rows, signs = [], []
    for name, members in groups.items():
        default = best([c for c in members if c.alpha == 2 * (c.rank or 0)])
        other = best([c for c in members if c.alpha != 2 * (c.rank or 0)])
        if default is None or other is None:
            continue
        diff, tokens = compare(sweep, default, other, Metric.LEARNING)
        signs.append(diff.sign())
        rows.append((name, f"{other.alpha:g}", f"{diff.text()} ({diff.how})",
                     f"{tokens:,}" if tokens else "-"))
    table = (("group", "other alpha", "learning: 2r minus other", "tokens"), tuple(rows))
    if not signs:
        return Recommendation("LoRA alpha", "Only one alpha was tried per setting.", (), claim,
                              UNTESTED, table)
    verdict = combine(signs, 1)
    advice = {AGREES: "Keep alpha = 2r: it learned more than the alternatives tried.",
              DISAGREES: "alpha = 2r learned less than the alternatives tried: use the better "
                         "alpha from the table.",
              NOISE: "alpha = 2r and the alternatives are not distinguishable here.",
              }.get(verdict, "alpha = 2r wins in some settings and loses in others.")
    return Recommendation("LoRA alpha", advice, (), claim, verdict, table)


def regularizers(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """LoRA against full FT with weight decay / dropout: who forgets less."""
    claim = "LoRA limits forgetting more than weight decay or dropout on full FT"
    lora = best(_lora(configs))
    families = sorted({c.family for c in configs if not c.is_lora and c.family != "full"})
    rows, signs = [], []
    for family in families:
        reg = best([c for c in configs if c.family == family])
        if lora is None or reg is None:
            continue
        forget, tokens = compare(sweep, lora, reg, Metric.FORGETTING)
        learn, _ = compare(sweep, lora, reg, Metric.LEARNING, tokens)
        signs.append(forget.sign())
        rows.append((family, reg.label, f"{forget.text()} ({forget.how})", learn.text()))
    table = (("regularized full FT", "config", "forgetting: LoRA minus it", "learning: LoRA minus it"),
             tuple(rows))
    if not signs:
        return Recommendation("Regularization", "No regularized full-FT family (weight decay, "
                              "dropout) to compare with.", (), claim, UNTESTED, table)
    verdict = combine(signs, -1)
    advice = {AGREES: "LoRA forgot less than every regularized full-FT variant tried.",
              DISAGREES: "Regularized full FT forgot less than LoRA here.",
              NOISE: "LoRA and regularized full FT forget about as much here."}.get(
        verdict, "LoRA forgot less than some regularized full-FT variants, not all.")
    return Recommendation("Regularization", advice, (), claim, verdict, table)


def diversity(sweep: Sweep, configs: list[Config]) -> Recommendation:
    """Generation diversity of the best LoRA against the best full FT."""
    claim = "LoRA keeps generations more diverse than full FT"
    names = [m for m in sweep.metric_names() if m.startswith(Metric.DIVERSITY_PREFIX)
             and not is_derived_metric(m)]
    full, lora = best(_plain_full(configs)), best(_lora(configs))
    if not names or full is None or lora is None:
        return Recommendation("Diversity", "No diversity metrics to compare.", (), claim, UNTESTED)
    rows, signs = [], []
    for name in names:
        diff, tokens = compare(sweep, lora, full, name)
        signs.append(diff.sign())
        rows.append((name, f"{diff.text()} ({diff.how})", f"{tokens:,}" if tokens else "-"))
    verdict = combine(signs, 1)
    advice = {AGREES: "LoRA's generations were more diverse than full FT's.",
              DISAGREES: "Full FT's generations were more diverse than LoRA's.",
              NOISE: "Diversity differences between LoRA and full FT are within noise."}.get(
        verdict, "Diversity differs by metric.")
    return Recommendation("Diversity", advice, (), claim, verdict,
                          (("metric", "LoRA minus full", "tokens"), tuple(rows)))


RULES = (learning_rates, lora_vs_full, target_modules, rank_trend, forgetting_budgets,
         alpha_choice, regularizers, diversity)


def recommend(sweep: Sweep) -> list[Recommendation]:
    """Every recommendation this sweep's data supports (untested ones say so)."""
    configs = group_configs(sweep.usable)
    return [rule(sweep, configs) for rule in RULES]


def summary_line(sweep: Sweep) -> str:
    counts: dict[str, int] = {}
    for trial in sweep.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    return (f"{len(sweep.trials)} trials ({states}); failed trials are left out. Differences "
            "are shown as diff ± SE; |diff| < 2 SE is called not distinguishable here.")


def to_markdown(sweep: Sweep, recommendations: list[Recommendation]) -> str:
    lines = [f"# Recommendations for `{sweep.name}`", "", summary_line(sweep), ""]
    for number, rec in enumerate(recommendations, 1):
        lines += [f"## {number}. {rec.topic}", "", f"**Advice.** {rec.advice}", ""]
        lines += [f"- {line}" for line in rec.evidence]
        if rec.evidence:
            lines.append("")
        if rec.table and rec.table[1]:
            lines += [markdown_table(*rec.table), ""]
        if rec.paper:
            lines += [f"*Paper:* {rec.paper}. **This sweep {rec.verdict}.**"
                      if rec.verdict in (AGREES, DISAGREES, PARTLY)
                      else f"*Paper:* {rec.paper}. **This sweep: {rec.verdict}.**", ""]
    return "\n".join(lines)

