"""``lfl-ray sweep STUDY [--preset P] [--set k=v ...] [--dry-run] [--resume] [...]``.

STUDY is a study file (``sweeps/code_ift.yaml``, your own ``my_study.yaml``, or a sweep's
logged ``sweep_spec.json``) or the name of a shipped study (``code_ift``). The same verb runs
on a laptop, under ``ray job submit -- lfl-ray sweep ...`` (the driver joins the cluster from
RAY_ADDRESS) and as ``python -m lfl_ray sweep``; ``python sweeps/code_ift.py`` runs it on its
sibling study file.

Exit status: 0 when every trial finished or was stopped early by the scheduler; 2 for bad
input (nothing started); 3 when some trials failed; 4 when no trial finished; 130 when the
sweep was interrupted (``--resume`` continues it); 1 when the sweep itself stopped on an error
(a full disk is named: ``error: the sweep stopped: disk full: ...``).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from lfl_ray.errors import AssetMissingError, ConfigError

from lfl_ray.sweep.outcome import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NONE_FINISHED, EXIT_SOME_FAILED  # noqa: F401


def add_arguments(p: argparse.ArgumentParser, *, study: bool = True) -> argparse.ArgumentParser:
    if study:
        p.add_argument("study", help="a study file (.yaml/.json) or a shipped study name "
                       "(code_ift, math_ift, code_cpt, math_cpt, regularization)")
    p.add_argument("--preset", help="a preset of the study file (default: its default_preset)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                   help="override one field, e.g. --set budget.steps=80 --set 'lora[0].lrs=[1e-3,2e-3]' "
                   "(values are YAML; repeatable)")
    p.add_argument("--spec-file", help="a YAML or JSON mapping of overrides merged onto the preset")
    p.add_argument("--regime", help="the regime (for a study that `extends` one, the study it extends)")
    p.add_argument("--name", help="sweep name: MLflow experiment and Tune folder (default: PRESET-STUDY)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///$PWD/mlruns/mlflow.db)")
    p.add_argument("--storage-path", help="Ray Tune storage: a local folder or s3://, gs:// (default ./ray_results)")
    p.add_argument("--resume", action="store_true", help="continue the sweep of this name: finished trials "
                   "are kept, unfinished ones resume from their last checkpoint")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default from the study)")
    p.add_argument("--dry-run", action="store_true", help="validate and print what the sweep will run and "
                   "its cost; start nothing")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="where a local Ray binds its dashboard (default 127.0.0.1, loopback only; "
                   "anything else is reachable from the network and prints a warning)")
    return p


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run a LoRA-vs-full study from a study file",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run_from_args)


def run_from_args(args) -> int:
    """Load the study, run it, and turn the outcome into the exit status."""
    from lfl_ray.sweep.study import load_study

    if args.max_concurrent is not None and args.max_concurrent <= 0:
        raise ConfigError("--max-concurrent", args.max_concurrent, "must be an integer > 0")
    study = load_study(args.study, preset=args.preset, spec_file=args.spec_file, sets=tuple(args.sets),
                       regime=args.regime, name=args.name)
    if args.max_concurrent is not None:
        study.data.setdefault("resources", {})
        study.data["resources"] = {**study.data["resources"], "max_concurrent": args.max_concurrent}
    spec = study.spec()
    from lfl_ray.sweep.runner import run_sweep

    try:
        outcome = run_sweep(spec, tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                            resume=args.resume, dry_run=args.dry_run, dashboard_host=args.dashboard_host,
                            description=study.description)
    except Exception as exc:
        from lfl_ray.sweep.outcome import EXIT_STOPPED, describe_error

        cause = describe_error(exc)
        if not cause.startswith("disk full"):
            raise
        # The traceback says where; the last line says why, as the parent run's lfl.error does.
        traceback.print_exc()
        print(f"error: the sweep stopped: {cause}", file=sys.stderr)
        return EXIT_STOPPED
    return 0 if outcome is None else outcome.exit_status


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """``lfl-ray sweep`` as a function (the scripts in sweeps/ call it). Exit 2 on bad input."""
    parser = add_arguments(argparse.ArgumentParser(prog=prog or "lfl-ray sweep",
                                                   description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except (ConfigError, AssetMissingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def script_main(study_file: str) -> int:
    """What ``python sweeps/NAME.py [flags]`` runs: the sweep of its sibling study file."""
    return main([study_file, *sys.argv[1:]], prog=f"python {sys.argv[0]}")
