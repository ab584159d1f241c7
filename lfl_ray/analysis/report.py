"""One self-contained HTML report for a sweep: the findings (from ``findings.json``),
recommendations, Pareto tables with forgetting at matched learning, capacity, KL as a
forgetting predictor, intruder mitigation, curves, weight spectra, intruder dimensions and
diversity; PNGs embedded as base64 (and also written beside it), logged with
``recommendations.md`` and ``findings.json`` under ``analysis/`` of the sweep's parent run,
whose MLflow note then shows the findings' headline table.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from lfl_ray.analysis import capacity, figures, findings, intruder_mitigation, kl_forgetting, matched
from lfl_ray.analysis.configs import group_configs
from lfl_ray.analysis.diversity import diversity_rows
from lfl_ray.analysis.intruders import IntruderSettings
from lfl_ray.analysis.pareto import (FRONT_HEADER, GROUPINGS, Point, front, front_rows, fronts_by,
                                     points)
from lfl_ray.analysis.recommend import (AGREES, DISAGREES, Recommendation, recommend,
                                        summary_line, to_markdown)
from lfl_ray.analysis.runs import Sweep
from lfl_ray.analysis.tables import html_table
from lfl_ray.mlflow_schema import Artifact, Metric, change_se_metric, log_analysis
from lfl_ray.analysis.weight_changes import (INTRUDER_HEADER, SPECTRUM_HEADER, analyse_sweep,
                                             intruder_kind_rows, intruder_rows, layer_rows,
                                             spectrum_rows)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.verdict { font-weight: bold; }
.agrees { color: #176b2c; } .disagrees { color: #a31515; } .other { color: #8a6d00; }
.note { color: #666; font-size: 0.9em; }
"""


def embed(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption class=note>{html.escape(Path(path).name)}</figcaption></figure>")


def recommendation_html(number: int, rec: Recommendation) -> str:
    css = "agrees" if rec.verdict == AGREES else "disagrees" if rec.verdict == DISAGREES else "other"
    parts = [f"<h3>{number}. {html.escape(rec.topic)}</h3>",
             f"<p><strong>Advice.</strong> {html.escape(rec.advice)}</p>"]
    if rec.evidence:
        parts.append("<ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in rec.evidence) + "</ul>")
    if rec.table and rec.table[1]:
        parts.append(html_table(*rec.table))
    if rec.paper:
        parts.append(f"<p><em>Paper:</em> {html.escape(rec.paper)}. "
                     f"<span class='verdict {css}'>This sweep: {html.escape(rec.verdict)}.</span></p>")
    return "\n".join(parts)


def paired_change_rows(sweep: Sweep) -> list[tuple]:
    """(trial, family, tokens, metric, change, SE) for every ``<m>_delta`` at each trial's last milestone."""
    rows = []
    for trial in sweep.usable:
        final = trial.final
        for name in sorted(final.metrics):
            if not name.endswith(Metric.DELTA_SUFFIX):
                continue
            metric = name[: -len(Metric.DELTA_SUFFIX)]
            se = final.metrics.get(change_se_metric(metric), float("nan"))
            rows.append((trial.trial_id, trial.family, f"{final.tokens:,}", metric,
                         f"{final.metrics[name]:+.4f}", f"{se:.4f}"))
    return rows


def mitigation_points(sweep: Sweep, summary: dict | None) -> list[Point]:
    """The intruder-scaled LoRA adapters as extra points of the learning-forgetting plane."""
    by_id = {t.trial_id: t for t in sweep.usable}
    out = []
    for trial, p in intruder_mitigation.points_from_summary(summary):
        source = by_id.get(trial["trial_id"])
        if source is None or p.get("learning") is None or p.get("forgetting") is None:
            continue
        out.append(Point(source, f"{trial['label']} intruders x{p['strength']:g}",
                         int(trial.get("tokens") or 0), p["learning"],
                         p.get("delta_learning_se") or float("nan"), p["forgetting"],
                         p.get("delta_forgetting_se") or float("nan")))
    return out


def _pareto_sections(sweep: Sweep, comparisons, summary: dict | None) -> list[str]:
    pts = points(sweep.usable)
    sections = ["<h3>Pareto front (all trials, all milestones)</h3>",
                html_table(FRONT_HEADER, front_rows(front(pts)))]
    for by in GROUPINGS:
        rows = [[group] + row for group, members in fronts_by(pts, by).items()
                for row in front_rows(members)]
        sections += [f"<h3>Fronts by {by}</h3>", html_table(["group"] + FRONT_HEADER, rows)]
    sections += ["<h3>Forgetting at matched learning</h3>",
                 "<p class=note>Each trial is a path from the base model (0, 0) through its "
                 "milestones; a family's curve is the least forgetting any of its trials shows at "
                 "each learning level (no extrapolation past the most it reached). Forgetting is "
                 "compared at the same learning: averaged over 0 to the most both families reach "
                 "(the headline), and at fractions of it. SEs: paired bootstrap over the eval items "
                 "(the same resample for every trial); eval noise only, not seed noise. "
                 "|difference| &lt; 2 SE reads not distinguishable.</p>",
                 html_table(matched.HEADER, matched.rows(comparisons))]
    extra = mitigation_points(sweep, summary)
    if extra:
        sections += ["<h3>Pareto front with the intruder-scaled LoRA adapters</h3>",
                     "<p class=note>The same front with each LoRA checkpoint's intruder-scaled "
                     "variants added (evals only); SEs of those points are of their paired change "
                     "from the adapter as trained.</p>",
                     html_table(FRONT_HEADER, front_rows(front(pts + extra)))]
    return sections


def build_report(sweep: Sweep, out_dir: str | Path, *, weights: bool = True,
                 settings: IntruderSettings = IntruderSettings(), fraction: float = 0.9,
                 device: str | None = None, log_to_mlflow: bool = True,
                 mitigation_summary: dict | None = None, n_boot: int = matched.N_BOOT) -> Path:
    """Write ``report.html`` (+ PNGs, ``recommendations.md``, ``findings.json``) into
    ``out_dir``; returns its path. ``mitigation_summary`` defaults to the intruder-mitigation
    summary beside the report or on the parent run, if one was made."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = group_configs(sweep.usable)
    comparisons = matched.matched_learning(sweep, n_boot=n_boot)
    capacities = capacity.sweep_capacity(sweep)
    predictors = kl_forgetting.kl_predictors(sweep)
    summary = (mitigation_summary if mitigation_summary is not None
               else intruder_mitigation.read_summary(sweep, out))
    results, skipped = (analyse_sweep(sweep, settings=settings, fraction=fraction, device=device)
                        if weights else ([], []))
    document = findings.build(sweep, configs, matched=comparisons, capacities=capacities,
                              predictors=predictors, weights=results if weights else None,
                              mitigation_summary=summary, fraction=fraction)
    findings_path = findings.write(document, out)
    document = json.loads(findings_path.read_text())  # the text is rendered from the file

    sections = [f"<h1>lfl-ray sweep report: {html.escape(sweep.name)}</h1>",
                f"<p class=note>Generated {time.strftime('%Y-%m-%d %H:%M')} from "
                f"{html.escape(sweep.tracking_uri)} (parent run {sweep.parent_run_id}). "
                f"{html.escape(summary_line(sweep))}</p>",
                "<h2>Findings</h2>",
                f"<p class=note>From <code>{findings.FILE}</code> (beside this report and under "
                "analysis/ of the parent run).</p>", findings.html(document)]
    status_rows = [(t.trial_id, t.family, t.status, len(t.milestones),
                    f"{t.final.tokens:,}" if t.final else "-") for t in sweep.trials]
    sections += ["<h2>Trials</h2>", html_table(("trial", "family", "status", "milestones",
                                                "last tokens"), status_rows)]
    if sweep.base_metrics:
        sections += ["<h2>Base model</h2>", html_table(
            ("metric", "value"), [(k, f"{v:.4f}") for k, v in sorted(sweep.base_metrics.items())])]

    change_rows = paired_change_rows(sweep)
    if change_rows:
        sections += ["<h2>Every eval's paired change from the base model</h2>",
                     "<p class=note>At each trial's last milestone: tuned minus base on the same items, with "
                     "the paired standard error (lm-eval suites appear as <code>lm_eval_&lt;task&gt;_...</code>).</p>",
                     html_table(("trial", "family", "tokens", "metric", "change", "paired SE"), change_rows)]

    recs = recommend(sweep)
    (out / "recommendations.md").write_text(to_markdown(sweep, recs))
    sections.append("<h2>Recommendations</h2>")
    sections += [recommendation_html(i, rec) for i, rec in enumerate(recs, 1)]

    sections.append("<h2>Learning vs forgetting</h2>")
    if configs:
        for name, make in (("tradeoff.png", lambda p: figures.tradeoff(configs, p)),
                           ("learning_vs_tokens.png",
                            lambda p: figures.over_tokens(configs, Metric.LEARNING, p)),
                           ("forgetting_vs_tokens.png",
                            lambda p: figures.over_tokens(configs, Metric.FORGETTING, p))):
            sections.append(embed(make(out / name), name))
    sections += _pareto_sections(sweep, comparisons, summary)

    place = capacity.placement(capacities)
    sections += ["<h2>Capacity</h2>",
                 f"<p>{html.escape(place['text'])}</p>",
                 "<p class=note>capacity use = tokens x "
                 f"{capacity.BITS_PER_TOKEN:g} bit / (trainable params x {capacity.BITS_PER_PARAM:g} "
                 f"bits): an order-of-magnitude axis (LoRA Without Regret). Below "
                 f"{capacity.FAR_BELOW:g}: far from capacity-limited, no gap to full FT predicted; "
                 f"from {capacity.LIMITED:g}: capacity-limited.</p>",
                 html_table(capacity.HEADER, capacity.rows(capacities))]

    sections += ["<h2>KL from the base model as a forgetting predictor</h2>",
                 "<p class=note>Spearman rank correlation across trials (each trial's last "
                 "milestone, among the trials that trained furthest) between a KL(base || tuned) "
                 "and forgetting; SE from a bootstrap over trials. drift_kl is measured on general "
                 "text, heldout_kl on the held-out target data (RL's Razor).</p>",
                 html_table(kl_forgetting.HEADER, kl_forgetting.rows(predictors))]

    sections.append("<h2>Intruder-dimension mitigation</h2>")
    if intruder_mitigation.points_from_summary(summary):
        sections += [f"<p class=note>peft's reduce_intruder_dimension (top {summary['settings']['top_k']}, "
                     f"epsilon {summary['settings']['epsilon']}) on each LoRA checkpoint; changes are "
                     "the scaled adapter minus the adapter as trained, paired over the same eval items. "
                     f"Cost: {html.escape(intruder_mitigation.cost_text(summary))}</p>",
                     html_table(intruder_mitigation.HEADER, intruder_mitigation.rows(summary))]
    else:
        sections.append("<p class=note>Not run: <code>lfl-ray analyse intruder-mitigation "
                        "--experiment NAME</code> (or <code>report --intruder-mitigation</code>) "
                        "evaluates each LoRA checkpoint with its intruders scaled.</p>")

    header, rows = diversity_rows(sweep, configs)
    sections.append("<h2>Generation diversity</h2>")
    sections.append(html_table(header, rows) if rows else
                    "<p class=note>No diversity_* metrics were logged.</p>")

    sections.append("<h2>Weight changes</h2>")
    if weights:
        sections.append(f"<p class=note>dW = W_tuned - W_base per adapted matrix (LoRA merged); "
                        f"rank@{fraction:.0%} = rank holding {fraction:.0%} of the squared singular "
                        f"values. Intruders: top {settings.top_k} left singular vectors of W_tuned "
                        f"with max |cos| below {settings.epsilon} against every base vector.</p>")
        if skipped:
            sections.append(html_table(("trial", "skipped because"),
                                       [(t.trial_id, why) for t, why in skipped]))
        if results:
            sections += ["<h3>Rank of dW per matrix type</h3>",
                         html_table(SPECTRUM_HEADER, spectrum_rows(results)),
                         embed(figures.rank90_by_kind(results, out / "rank90_by_kind.png"),
                               "rank90_by_kind"),
                         "<h3>Rank of dW per layer</h3>",
                         html_table(("trial", "method", "layer", "mean rank@90%"), layer_rows(results)),
                         embed(figures.rank90_by_layer(results, out / "rank90_by_layer.png"),
                               "rank90_by_layer"),
                         "<h3>Spectra</h3>",
                         embed(figures.spectra(results, out / "spectra.png"), "spectra"),
                         "<h3>Intruder dimensions</h3>",
                         html_table(INTRUDER_HEADER, intruder_rows(results)),
                         html_table(("method", "matrix", "matrices", "intruders per matrix"),
                                    intruder_kind_rows(results)),
                         embed(figures.intruders(results, out / "intruders.png"), "intruders")]
    else:
        sections.append("<p class=note>Weight analysis was turned off.</p>")

    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(sweep.name)}: lfl-ray report</title><style>{STYLE}</style>"
            "</head><body>" + "\n".join(sections) + "</body></html>")
    path = out / "report.html"
    path.write_text(page)
    (out / "findings.md").write_text(findings.markdown(document))
    if log_to_mlflow and log_folder(sweep, out):
        findings.set_note(sweep, document, f"Report: `{Artifact.ANALYSIS}/report.html` of this run.")
    return path


def log_folder(sweep: Sweep, folder: Path) -> bool:
    """Log a folder's files as artifacts of the sweep's parent run; False without a parent."""
    if sweep.parent_run_id is None:
        return False
    log_analysis(sweep.tracking_uri, sweep.parent_run_id, folder)
    return True
