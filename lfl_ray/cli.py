"""The ``lfl-ray`` command: verbs map to library functions (sweep, assets, data, eval, analyse).

Each verb group lives beside the code it drives and exposes ``register(subparsers)``; this
file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add verbs; each has register(subparsers) which sets ``func`` on its parsers.
VERB_MODULES = ("lfl_ray.sweep.cli", "lfl_ray.assets_cli", "lfl_ray.data.cli", "lfl_ray.eval.cli",
                "lfl_ray.analysis.cli", "lfl_ray.ui_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfl-ray", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lfl_ray.errors import AssetMissingError, ConfigError

    from lfl_ray.progress import quiet_library_bars

    args = build_parser().parse_args(argv)
    quiet_library_bars()  # outside a terminal: no "Loading weights" bars in a log
    try:
        result = args.func(args)
    except (ConfigError, AssetMissingError) as exc:
        print(f"lfl-ray: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
