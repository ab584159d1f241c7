"""``lfl-ray data ...``: list the registered regimes, inspect one's data (built and cached if needed).

    lfl-ray data stats code_ift --max-train-blocks 200
    lfl-ray data stats --study my_study.yaml [--preset P] [--set budget.seq_len=512]

With ``--study`` the data is the study's own (its ``data:`` section, or its regime), built
exactly as its sweep builds it: the model's tokenizer, ``budget.seq_len``, the caps, and the
decontamination against the study's eval suites.
"""

from __future__ import annotations

import argparse
import json

from lfl_ray.data.regimes import REGIMES
from lfl_ray.data.spec import SOURCES


def register(subparsers) -> None:
    """Add the ``data`` verb group (``data regimes``, ``data stats``)."""
    data = subparsers.add_parser("data", help="inspect the regimes' data")
    verbs = data.add_subparsers(dest="data_verb", required=True)
    listing = verbs.add_parser("regimes", help="the registered regimes: kind, sources, learning eval")
    listing.set_defaults(func=run_regimes)
    stats = verbs.add_parser("stats", help="examples, tokens per split and a sample of a regime")
    stats.add_argument("regime", nargs="?", help=f"one of {', '.join(REGIMES)} (or give --study)")
    stats.add_argument("--study", help="a study file (or shipped study): its own data, as its sweep builds it")
    stats.add_argument("--preset", help="with --study: the preset (default: the study's default_preset)")
    stats.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                       help="with --study: override one field, as `lfl-ray sweep --set`")
    stats.add_argument("--source", default="offline", choices=SOURCES)
    stats.add_argument("--seq-len", type=int, default=256)
    stats.add_argument("--seed", type=int, default=0)
    stats.add_argument("--max-train-blocks", type=int, default=None,
                       help="cap on train rows (default: every document)")
    stats.add_argument("--heldout-blocks", type=int, default=32)
    stats.add_argument("--model", default="smollm2-135m-instruct", help="tokenizer spec")
    stats.add_argument("--hub-dataset", default=None, help="override the hub dataset id or give a local folder")
    stats.add_argument("--no-pack", action="store_true", help="IFT: one example per row")
    stats.add_argument("--json", action="store_true", help="print the full stats as JSON")
    stats.set_defaults(func=run_stats)


def run_regimes(args: argparse.Namespace) -> int:
    """Print one line per registered regime."""
    for name, regime in REGIMES.items():
        learning = regime.learning_metric or "-"
        role = "" if regime.trainable else "  (forgetting only)"
        print(f"{name:10s} {regime.kind:8s} sources {'+'.join(regime.sources):11s} "
              f"learning {learning:15s} {regime.description}{role}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """Build (or load) the regime and print its stats."""
    from lfl_ray.data.build import load_regime
    from lfl_ray.data.facts import stats_text

    stats = load_regime(_spec_of(args)).stats
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    print(stats_text(stats))
    return 0


def _spec_of(args: argparse.Namespace):
    """The DataSpec of the flags, or of the study given with --study."""
    from lfl_ray.data.spec import DataSpec
    from lfl_ray.errors import ConfigError

    if args.study:
        if args.regime:
            raise ConfigError("regime", args.regime, "must not be given with --study (the study says what "
                              "its data is)")
        from lfl_ray.sweep.study import load_study

        sweep = load_study(args.study, preset=args.preset, sets=tuple(args.sets)).spec().validate()
        return sweep.data_spec()
    if args.preset or args.sets:
        raise ConfigError("--preset" if args.preset else "--set", args.preset or args.sets,
                          "is only read with --study")
    if not args.regime:
        raise ConfigError("regime", None, f"is required: one of {list(REGIMES)}, or --study FILE")
    return DataSpec(regime=args.regime, source=args.source, model=args.model, seq_len=args.seq_len,
                    seed=args.seed, max_train_blocks=args.max_train_blocks,
                    heldout_blocks=args.heldout_blocks, pack=not args.no_pack,
                    hub_dataset=args.hub_dataset).validate()
