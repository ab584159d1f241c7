"""``lfl-ray data ...``: list the registered regimes, inspect one's data (built and cached if needed)."""

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
    stats.add_argument("regime", help=f"one of {', '.join(REGIMES)}")
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
    from lfl_ray.data.spec import DataSpec

    spec = DataSpec(regime=args.regime, source=args.source, model=args.model, seq_len=args.seq_len,
                    seed=args.seed, max_train_blocks=args.max_train_blocks,
                    heldout_blocks=args.heldout_blocks, pack=not args.no_pack,
                    hub_dataset=args.hub_dataset).validate()
    stats = load_regime(spec).stats
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    print(f"{stats['regime']} ({stats['source']}, {stats['kind']}, seq_len {stats['seq_len']}, "
          f"seed {stats['seed']}{', packed' if stats['packed'] else ''})")
    print(f"  records {stats['records']} in {stats['documents_available']} documents")
    for split in ("train", "heldout"):
        s = stats[split]
        print(f"  {split:8s} rows {s['rows']:6d}  examples {s['examples']:6d}  documents {s['documents']:6d}  "
              f"tokens {s['tokens']:9d}  loss tokens {s['loss_tokens']:9d}  sources {s['sources']}")
    if stats.get("length_rule"):
        print(f"  length rule: {stats['length_rule']}")
    for key in ("python", "math_docs"):
        if key in stats:
            print(f"  {key}: {stats[key]}")
    for note in stats.get("notes", []):
        print(f"  note: {note}")
    sample = stats["sample"]
    print(f"  sample (first train row, {sample['doc_id']}):\n{_indent(sample['text'])}")
    print(f"  ... of which loss is taken on:\n{_indent(sample['loss_text'])}")
    return 0


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines())
