"""Command lines of the analysis: the scripts in ``analysis/`` and ``lfl-ray analyse <verb>``.

Every verb takes ``--experiment NAME [--tracking-uri URI] [--out DIR]``; the store defaults
to the sweeps' ``sqlite:///<cwd>/mlruns/mlflow.db`` and the output folder to
``mlruns/reports/<experiment>``. Outputs are logged under ``analysis/`` of the parent run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lfl_ray.mlflow_schema import Artifact, Metric, Param

VERBS = ("pareto", "recommend", "spectrum", "intruders", "intruder-mitigation", "diversity",
         "report")


def add_common(parser: argparse.ArgumentParser) -> None:
    from lfl_ray.analysis.runs import default_tracking_uri

    parser.add_argument("--experiment", required=True, help="MLflow experiment = sweep name")
    parser.add_argument("--tracking-uri", default=default_tracking_uri(),
                        help="MLflow store (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: mlruns/reports/<experiment>)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the outputs to the sweep's parent run")


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-k", type=int, default=10, help="intruders: top singular vectors")
    parser.add_argument("--epsilon", type=float, default=0.5, help="intruders: |cos| threshold")
    parser.add_argument("--fraction", type=float, default=0.9, help="variance share for the rank")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")


def _out(args) -> Path:
    out = Path(args.out or Path("mlruns") / "reports" / args.experiment)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load(args):
    from lfl_ray.analysis.runs import load_sweep

    return load_sweep(args.experiment, args.tracking_uri)


def _log(args, sweep, out: Path) -> None:
    from lfl_ray.analysis.report import log_folder

    if not args.no_log and log_folder(sweep, out):
        print(f"[analysis] logged {out} to run {sweep.parent_run_id} under {Artifact.ANALYSIS}/")


def run_pareto(args) -> int:
    from lfl_ray.analysis import figures
    from lfl_ray.analysis.configs import group_configs
    from lfl_ray.analysis.pareto import pareto_markdown

    sweep, out = _load(args), _out(args)
    text = pareto_markdown(sweep)
    print(text)
    (out / "pareto.md").write_text(text)
    configs = group_configs(sweep.usable)
    if configs:
        figures.tradeoff(configs, out / "tradeoff.png")
        figures.over_tokens(configs, Metric.LEARNING, out / "learning_vs_tokens.png")
        figures.over_tokens(configs, Metric.FORGETTING, out / "forgetting_vs_tokens.png")
    _log(args, sweep, out)
    return 0


def run_recommend(args) -> int:
    from lfl_ray.analysis.recommend import recommend, to_markdown

    sweep, out = _load(args), _out(args)
    text = to_markdown(sweep, recommend(sweep))
    print(text)
    (out / "recommendations.md").write_text(text)
    print(f"[analysis] wrote {out / 'recommendations.md'}")
    _log(args, sweep, out)
    return 0


def _weights(args):
    from lfl_ray.analysis.intruders import IntruderSettings
    from lfl_ray.analysis.weight_changes import analyse_sweep

    sweep, out = _load(args), _out(args)
    settings = IntruderSettings(top_k=args.top_k, epsilon=args.epsilon).validate()
    results, skipped = analyse_sweep(sweep, settings=settings, fraction=args.fraction,
                                     device=args.device)
    for trial, why in skipped:
        print(f"[analysis] skipped {trial.trial_id}: {why}")
    return sweep, out, results


def run_spectrum(args) -> int:
    from lfl_ray.analysis import figures
    from lfl_ray.analysis.tables import markdown_table
    from lfl_ray.analysis.weight_changes import SPECTRUM_HEADER, layer_rows, spectrum_rows

    sweep, out, results = _weights(args)
    text = "\n\n".join([f"## Rank of dW for {args.fraction:.0%} of its variance",
                        markdown_table(SPECTRUM_HEADER, spectrum_rows(results)), "### Per layer",
                        markdown_table(("trial", "method", "layer", "mean rank"),
                                       layer_rows(results))])
    print(text)
    (out / "spectrum.md").write_text(text)
    if results:
        figures.rank90_by_kind(results, out / "rank90_by_kind.png")
        figures.rank90_by_layer(results, out / "rank90_by_layer.png")
        figures.spectra(results, out / "spectra.png")
    _log(args, sweep, out)
    return 0


def run_intruders(args) -> int:
    from lfl_ray.analysis import figures
    from lfl_ray.analysis.intruders import IntruderSettings, mitigate
    from lfl_ray.analysis.tables import markdown_table
    from lfl_ray.analysis.weight_changes import (INTRUDER_HEADER, intruder_kind_rows,
                                                 intruder_rows)

    sweep, out, results = _weights(args)
    parts = [f"## Intruder dimensions (top {args.top_k}, epsilon {args.epsilon})",
             markdown_table(INTRUDER_HEADER, intruder_rows(results)),
             markdown_table(("method", "matrix", "matrices", "intruders per matrix"),
                            intruder_kind_rows(results))]
    if args.mitigate is not None:
        settings = IntruderSettings(args.top_k, args.epsilon, args.mitigate).validate()
        rows = []
        for result in results:
            if result.trial.is_lora:
                m = mitigate(result.trial.params.get(Param.MODEL, ""), result.trial.checkpoint,
                             trial_id=result.trial.trial_id, settings=settings)
                rows.append((m.trial_id, m.intruders_before, m.intruders_after))
        parts += [f"### peft mitigation (lambda {args.mitigate})",
                  markdown_table(("trial", "intruders before", "after"), rows)]
    text = "\n\n".join(parts)
    print(text)
    (out / "intruders.md").write_text(text)
    if results:
        figures.intruders(results, out / "intruders.png")
    _log(args, sweep, out)
    return 0


def _strengths(text: str) -> tuple[float, ...]:
    from lfl_ray.errors import ConfigError

    try:
        values = tuple(float(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or not all(0 <= v <= 1 for v in values):
        raise ConfigError("--strengths", text, "must be comma-separated numbers in [0, 1], "
                          "e.g. 0.75,0.5")
    return values


def _mitigate(args, sweep, out: Path) -> dict:
    from lfl_ray.analysis import intruder_mitigation
    from lfl_ray.analysis.intruders import IntruderSettings

    settings = IntruderSettings(top_k=args.top_k, epsilon=args.epsilon).validate()
    summary = intruder_mitigation.mitigate_sweep(sweep, strengths=_strengths(args.strengths),
                                                 settings=settings, log_to_mlflow=not args.no_log,
                                                 trials=args.mitigation_trials)
    intruder_mitigation.write_summary(summary, out)
    for entry in summary["skipped"]:
        print(f"[analysis] skipped {entry['trial_id']}: {entry['why']}")
    return summary


def run_intruder_mitigation(args) -> int:
    from lfl_ray.analysis import intruder_mitigation
    from lfl_ray.analysis.tables import markdown_table

    sweep, out = _load(args), _out(args)
    summary = _mitigate(args, sweep, out)
    lines = [f"## Intruder mitigation (strengths {summary['strengths']})",
             markdown_table(intruder_mitigation.HEADER, intruder_mitigation.rows(summary)),
             intruder_mitigation.cost_text(summary)]
    lines += [intruder_mitigation.sentence(t, p)
              for t, p in intruder_mitigation.points_from_summary(summary)]
    text = "\n\n".join(lines)
    print(text)
    (out / "intruder_mitigation.md").write_text(text)
    _log(args, sweep, out)
    return 0


def run_diversity(args) -> int:
    from lfl_ray.analysis.configs import group_configs
    from lfl_ray.analysis.diversity import diversity_rows
    from lfl_ray.analysis.tables import markdown_table

    sweep, out = _load(args), _out(args)
    header, rows = diversity_rows(sweep, group_configs(sweep.usable))
    text = "## Generation diversity\n\n" + (markdown_table(header, rows) if rows else
                                            "No diversity_* metrics were logged.")
    print(text)
    (out / "diversity.md").write_text(text)
    return 0


def run_report(args) -> int:
    from lfl_ray.analysis.intruders import IntruderSettings
    from lfl_ray.analysis.report import build_report

    sweep, out = _load(args), _out(args)
    settings = IntruderSettings(top_k=args.top_k, epsilon=args.epsilon).validate()
    summary = _mitigate(args, sweep, out) if args.intruder_mitigation else None
    path = build_report(sweep, out, weights=not args.no_weights, settings=settings,
                        fraction=args.fraction, device=args.device, log_to_mlflow=not args.no_log,
                        mitigation_summary=summary)
    print(path.resolve())
    return 0


RUNNERS = {"pareto": run_pareto, "recommend": run_recommend, "spectrum": run_spectrum,
           "intruders": run_intruders, "intruder-mitigation": run_intruder_mitigation,
           "diversity": run_diversity, "report": run_report}
HELP = {"pareto": "Pareto fronts of learning vs forgetting, table and plots",
        "recommend": "recommendations with uncertainties, against the paper's claims",
        "spectrum": "rank of the weight change dW per matrix, full vs LoRA",
        "intruders": "intruder dimensions per trial (and peft's mitigation)",
        "intruder-mitigation": "evaluate each LoRA checkpoint with its intruders scaled "
                               "(evals only): learning and forgetting changes, paired",
        "diversity": "generation diversity per configuration and method",
        "report": "one self-contained HTML report of the sweep"}


def add_verb(subparsers, verb: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(verb, help=HELP[verb], description=HELP[verb])
    add_common(parser)
    if verb in ("spectrum", "intruders", "intruder-mitigation", "report"):
        add_weights(parser)
    if verb in ("intruder-mitigation", "report"):
        parser.add_argument("--strengths", default="0.75,0.5",
                            help="intruder scales lambda to evaluate (1 = as trained, 0 = removed; "
                                 "default %(default)s)")
        parser.add_argument("--mitigation-trials", choices=("all", "best"), default="all",
                            help="LoRA checkpoints to evaluate scaled: all, or only the one that "
                                 "learned most (the one the findings quote; 1 + strengths evals)")
    if verb == "intruders":
        parser.add_argument("--mitigate", type=float, default=None, metavar="LAMBDA",
                            help="also apply peft's reduce_intruder_dimension with this lambda")
    if verb == "report":
        parser.add_argument("--no-weights", action="store_true",
                            help="skip the checkpoint analysis (spectra, intruders)")
        parser.add_argument("--intruder-mitigation", action="store_true",
                            help="first run intruder-mitigation (evals of every LoRA checkpoint "
                                 "at --strengths); without it the report uses an earlier run's")
    parser.set_defaults(func=RUNNERS[verb])
    return parser


def register(subparsers) -> None:
    """Adds ``lfl-ray analyse <verb>`` (for ``lfl_ray.cli.VERB_MODULES``)."""
    parser = subparsers.add_parser("analyse", help="analyse a sweep's MLflow experiment")
    verbs = parser.add_subparsers(dest="analysis_verb", required=True)
    for verb in VERBS:
        add_verb(verbs, verb)


def main(argv: list[str] | None = None) -> int:
    """``main(["report", "--experiment", "x"])`` = ``lfl-ray analyse report --experiment x``."""
    from lfl_ray.cli import main as lfl_ray_main

    return lfl_ray_main(["analyse", *(sys.argv[1:] if argv is None else argv)])
