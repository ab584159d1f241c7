"""Command line of the sweep scripts: ``python sweeps/code_ift.py --preset cpu [...]``.

The same flags work under ``ray job submit --working-dir . -- python sweeps/code_ift.py``
(the driver then joins the cluster from RAY_ADDRESS).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Callable

from lfl_ray.errors import AssetMissingError, ConfigError


def parser(description: str, presets: tuple[str, ...], default: str,
           regime_choices: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if regime_choices:
        p.add_argument("--regime", default=regime_choices[0], help=f"one of {list(regime_choices)}")
    p.add_argument("--preset", default=default, help=f"one of {list(presets)} (default {default})")
    p.add_argument("--name", help="sweep name: MLflow experiment and Tune folder (default: preset-regime)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///$PWD/mlruns/mlflow.db)")
    p.add_argument("--storage-path", help="Ray Tune storage: a local folder or s3://, gs:// (default ./ray_results)")
    p.add_argument("--resume", action="store_true", help="continue the sweep of this name: finished trials "
                   "are kept, unfinished ones resume from their last checkpoint")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default from the preset)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the trial table and cost; start nothing")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="where a local Ray binds its dashboard (default 127.0.0.1, loopback only; "
                   "anything else is reachable from the network and prints a warning)")
    p.add_argument("--spec-file", help="a JSON or YAML file of SweepSpec overrides (e.g. budget.steps: 80)")
    return p


def apply_overrides(spec, overrides: dict):
    """Apply dotted overrides (``{"budget": {"steps": 80}}`` or ``{"budget.steps": 80}``)."""
    from lfl_ray.sweep.spec import FullGrid, LoraGrid

    nested: dict = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif isinstance(value, dict):
            nested.setdefault(head, {}).update(value)
        else:
            nested[head] = value
    changes = {}
    for key, value in nested.items():
        if key not in spec.__dataclass_fields__:
            raise ConfigError(f"spec file: {key}", value, f"must be one of {sorted(spec.__dataclass_fields__)}")
        if key in ("budget", "resources") and isinstance(value, dict):
            current = getattr(spec, key)
            bad = [k for k in value if k not in current.__dataclass_fields__]
            if bad:
                raise ConfigError(f"spec file: {key}.{bad[0]}", value[bad[0]],
                                  f"must be one of {sorted(current.__dataclass_fields__)}")
            changes[key] = replace(current, **{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        elif key == "full":
            changes[key] = tuple(FullGrid(**{k: tuple(v) for k, v in g.items()}) for g in value)
        elif key == "lora":
            changes[key] = tuple(LoraGrid(**{k: tuple(v) if isinstance(v, list) else v for k, v in g.items()})
                                 for g in value)
        else:
            changes[key] = tuple(value) if isinstance(value, list) else value
    return replace(spec, **changes)


def load_spec_file(path: str) -> dict:
    import yaml

    try:
        text = open(path).read()
    except OSError as exc:
        raise ConfigError("--spec-file", path, f"must be a readable file ({exc.strerror})") from exc
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError("--spec-file", path, f"must be valid {'JSON' if path.endswith('.json') else 'YAML'}: "
                          f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError("--spec-file", path, "must hold a mapping of SweepSpec fields")
    return data


def sweep_main(regime: str | None, description: str, build: Callable[[str, str, str | None], object],
               presets: tuple[str, ...], default: str = "cpu", argv: list[str] | None = None) -> int:
    """Parse flags, build the spec from the preset, run the sweep. Exit 2 on bad input.
    With ``regime=None`` the script takes ``--regime``."""
    regimes = ("code_ift", "math_ift", "code_cpt", "math_cpt") if regime is None else ()
    args = parser(description, presets, default, regimes).parse_args(argv)
    try:
        if regime is None:
            from lfl_ray.errors import require_choice

            require_choice("--regime", args.regime, regimes)
        spec = build(regime or args.regime, args.preset, args.name)
        if args.spec_file:
            spec = apply_overrides(spec, load_spec_file(args.spec_file))
        if args.max_concurrent is not None and args.max_concurrent <= 0:
            raise ConfigError("--max-concurrent", args.max_concurrent, "must be an integer > 0")
        from lfl_ray.sweep.runner import run_sweep

        run_sweep(spec, tracking_uri=args.tracking_uri, storage_path=args.storage_path, resume=args.resume,
                  dry_run=args.dry_run, max_concurrent=args.max_concurrent,
                  dashboard_host=args.dashboard_host)
    except (ConfigError, AssetMissingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
