"""``lfl-ray eval``: evaluate a model (optionally with a LoRA adapter) and print a table.

    lfl-ray eval --model smollm2-135m-instruct --suite forgetting --limit 50
    lfl-ray eval --model M --adapter runs/trial_3/adapter --suite code --limit 20
    lfl-ray eval --adapter 3f2a...c9 [--tracking-uri URI]     # a sweep trial's MLflow run id

Given a trial's run id, it evaluates what the trial trained (its logged LoRA adapter, or a
full-FT run's checkpoint) on the model the trial trained, by default with ``--suite loss``
on the held-out and general-text rows its sweep logged, with the sweep's eval settings: the
same numbers as the run's last milestone.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

SUITE_GROUPS = {
    "code": ("humaneval",),
    "math": ("gsm8k",),
    "forgetting": ("hellaswag", "arc_challenge", "winogrande"),
    "loss": ("heldout_loss", "general_loss"),
    "diversity": ("diversity",),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a model on a suite and print a table")
    parser.add_argument("--model", help="model spec (built-in alias, folder, hub id); with a run id as "
                        "--adapter, the model that run trained")
    parser.add_argument("--adapter", help="folder of a peft LoRA adapter to apply to the model, or the MLflow "
                        "run id of a sweep's trial (LoRA: its logged adapter; full FT: its checkpoint)")
    parser.add_argument("--tracking-uri", help="MLflow store of the run id given as --adapter (default as for "
                        "a sweep: $MLFLOW_TRACKING_URI or sqlite:///$PWD/mlruns/mlflow.db)")
    parser.add_argument("--suite", action="append", choices=sorted(SUITE_GROUPS),
                        help="suite group; repeat for several (default with a run id: loss)")
    parser.add_argument("--limit", type=int, help="items per suite (seeded fixed subset)")
    parser.add_argument("--seed", type=int, help="seed of the subset and of sampling (default 0, or the sweep's)")
    parser.add_argument("--batch-size", type=int, help="default 8, or the sweep's")
    parser.add_argument("--max-new-tokens", type=int, help="default 512, or the sweep's")
    parser.add_argument("--chat", choices=("auto", "yes", "no"),
                        help="prompt with the chat template (auto, the default: if the tokenizer has one)")
    parser.add_argument("--heldout", help="TokenBlocks file (.pt) for heldout_loss")
    parser.add_argument("--general", help="TokenBlocks file (.pt) for general_loss")
    parser.add_argument("--regime", default="code_cpt",
                        help="data regime whose held-out split feeds heldout_loss when --heldout "
                             "is not given")
    parser.add_argument("--backend", choices=("auto", "hf", "vllm"), default="auto",
                        help="auto: vLLM when CUDA and the gpu extra are there and no loss "
                             "suite is asked for, else Hugging Face")
    parser.add_argument("--json", dest="json_out", help="also write the EvalResult as JSON here")
    parser.set_defaults(func=_eval)


def _blocks(args, suites, trial=None):
    from lfl_ray.data.blocks import TokenBlocks

    heldout_file = args.heldout or (trial.heldout if trial else None)
    general_file = args.general or (trial.general if trial else None)
    for suite, file, flag in (("heldout_loss", heldout_file, "--heldout"), ("general_loss", general_file, "--general")):
        if trial is not None and suite in suites and not file:
            from lfl_ray.errors import ConfigError

            raise ConfigError(flag, None, f"is needed for {suite}: the sweep of run {trial.run_id} logged no "
                              "eval rows (an older lfl-ray); give a TokenBlocks file")
    heldout = general = None
    if "heldout_loss" in suites:
        heldout = TokenBlocks.load(heldout_file) if heldout_file else _regime_blocks(args, args.regime)
    if "general_loss" in suites:
        general = TokenBlocks.load(general_file) if general_file else _regime_blocks(args, "general")
    return heldout, general


def _regime_blocks(args, regime: str):
    from lfl_ray.errors import ConfigError

    try:
        from lfl_ray.data import DataSpec, load_regime
    except ImportError as exc:
        raise ConfigError("--heldout/--general", None, "give TokenBlocks files",
                          hint=f"the data layer cannot build them here: {exc}") from exc
    data = load_regime(DataSpec(regime=regime, model=args.model).validate())
    return getattr(data, "heldout", data)


def _load(args, trial=None):
    """The model to evaluate: ``--model`` with ``--adapter``, or what trial run ``trial`` trained."""
    import torch

    from lfl_ray.models import load_model, load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if trial is not None and trial.weights:  # full finetuning: the checkpoint's own model folder
        model = load_model(trial.weights, dtype=dtype)
    else:
        model = load_model(args.model, dtype=dtype, seed=trial.seed if trial else 0)
    adapter = trial.adapter if trial else args.adapter
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device), load_tokenizer(args.model)


def _trial(args, folder: str):
    """The trial run named by ``--adapter RUN_ID``, fetched into ``folder`` (None when
    --adapter is a folder or absent); fills in ``--model`` and ``--suite`` from it."""
    from lfl_ray.errors import ConfigError
    from lfl_ray.eval.logged_trial import fetch_trial, is_run_id
    from lfl_ray.tracking import default_tracking_uri

    if not is_run_id(args.adapter):
        if not args.model:
            raise ConfigError("--model", None, "is required (unless --adapter is the MLflow run id of a trial)")
        if not args.suite:
            raise ConfigError("--suite", None, f"is required: one or more of {sorted(SUITE_GROUPS)}")
        return None
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    trial = fetch_trial(uri, args.adapter, folder)
    if args.model and args.model != trial.model:
        raise ConfigError("--model", args.model, f"must be left out or be the model run {trial.run_id} trained "
                          f"({trial.model!r})")
    args.model, args.suite = trial.model, args.suite or ["loss"]
    print(f"trial {trial.key} (run {trial.run_id}, {trial.method}): "
          + (f"its logged adapter (runs:/{trial.run_id}/adapter)" if trial.adapter else f"checkpoint {trial.weights}")
          + f" on {trial.model}")
    return trial


def _spec_settings(args, trial) -> dict:
    """Eval settings: the flags given, else the sweep's (a run id), else the defaults."""
    sweep = trial.eval_spec if trial else {}
    defaults = {"seed": 0, "batch_size": 8, "max_new_tokens": 512, "chat": None}
    settings = {}
    for key, default in defaults.items():
        given = getattr(args, key)
        if given is None:
            settings[key] = sweep.get(key, default)
        else:
            settings[key] = {"auto": None, "yes": True, "no": False}[given] if key == "chat" else given
    if sweep.get("add_bos_token") is not None:
        settings["add_bos_token"] = sweep["add_bos_token"]
    return settings


def _use_vllm(args, suites) -> bool:
    from lfl_ray.errors import ConfigError
    from lfl_ray.eval.backend import vllm_available

    needs_hf = any(s in ("heldout_loss", "general_loss", "drift") for s in suites)
    if args.backend == "vllm":
        if not vllm_available():
            raise ConfigError("--backend", "vllm", "needs CUDA and the gpu extra (pip install "
                              "'lfl-ray[gpu]')")
        if needs_hf:
            raise ConfigError("--backend", "vllm", "loss suites need --backend hf")
        return True
    return args.backend == "auto" and vllm_available() and not needs_hf


def format_table(result, base=None) -> str:
    """Metrics with SEs (and change from base with paired SE, if given) as aligned text."""
    from lfl_ray.eval.milestone import metric_difference

    rows = [("metric", "value", "se") + (("delta", "delta_se") if base else ())]
    for name, value in result.metrics.items():
        if name.endswith(("_se", "_stderr")):
            continue
        se = result.metrics.get(f"{name}_se")
        row = (name, f"{value:.4f}", "" if se is None or math.isnan(se) else f"{se:.4f}")
        if base is not None and name in base.metrics and name != "eval_seconds":
            delta, dse = metric_difference(result, base, name)
            row += (f"{delta:+.4f}", "" if dse is None else f"{dse:.4f}")
        rows.append(row)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _eval(args) -> int:
    with tempfile.TemporaryDirectory(prefix="lfl-eval-") as folder:  # a run's downloaded artifacts
        return _eval_in(args, _trial(args, folder))


def _eval_in(args, trial) -> int:
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    suites = tuple(dict.fromkeys(s for group in args.suite for s in SUITE_GROUPS[group]))
    if args.limit is not None:
        limits = {s: args.limit for s in suites}
    else:  # a trial's sweep may have measured fewer items
        limits = {s: n for s, n in ((trial.eval_spec if trial else {}).get("limits") or {}).items() if s in suites}
    spec = EvalSpec(suites=suites, limits=limits, **_spec_settings(args, trial)).validate()
    heldout, general = _blocks(args, suites, trial)
    evaluator = MilestoneEvaluator(spec, args.model, heldout, general, require_primary=False)
    base = evaluator.base() if args.adapter else None
    if _use_vllm(args, suites):
        from lfl_ray.eval.backend import VLLMBackend
        from lfl_ray.models import resolve_model

        engine = VLLMBackend(trial.weights if trial and trial.weights else resolve_model(args.model).location)
        adapter = trial.adapter if trial else args.adapter
        result = evaluator.evaluate_backend(engine.with_adapter(adapter))
    else:
        model, tokenizer = _load(args, trial)
        result = evaluator(model, tokenizer)
    print(format_table(result, base))
    if trial is not None and trial.tokens is not None:
        logged = [f"{name} {trial.logged[name]:.6f}" for name in result.metrics if name in trial.logged
                  and not name.endswith(("_se", "_stderr")) and name != "eval_seconds"]
        if logged:
            print(f"logged by the run at its last milestone ({trial.tokens:,} tokens): {', '.join(logged)}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"result": result.to_json(), "base": base.to_json() if base else None,
                       "spec": spec.to_json()}, f, indent=1)
    return 0

