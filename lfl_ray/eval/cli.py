"""``lfl-ray eval``: evaluate a model (optionally with a LoRA adapter) and print a table.

    lfl-ray eval --model smollm2-135m-instruct --suite forgetting --limit 50
    lfl-ray eval --model M --adapter runs/trial_3/adapter --suite code --limit 20
"""

from __future__ import annotations

import json
import math

SUITE_GROUPS = {
    "code": ("humaneval",),
    "math": ("gsm8k",),
    "forgetting": ("hellaswag", "arc_challenge", "winogrande"),
    "loss": ("heldout_loss", "general_loss"),
    "diversity": ("diversity",),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a model on a suite and print a table")
    parser.add_argument("--model", required=True, help="model spec (built-in alias, folder, hub id)")
    parser.add_argument("--adapter", help="folder of a peft LoRA adapter to apply to the model")
    parser.add_argument("--suite", required=True, action="append", choices=sorted(SUITE_GROUPS),
                        help="suite group; repeat for several")
    parser.add_argument("--limit", type=int, help="items per suite (seeded fixed subset)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and of sampling")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--chat", choices=("auto", "yes", "no"), default="auto",
                        help="prompt with the chat template (auto: if the tokenizer has one)")
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


def _blocks(args, suites):
    from lfl_ray.data.blocks import TokenBlocks

    heldout = general = None
    if "heldout_loss" in suites:
        heldout = TokenBlocks.load(args.heldout) if args.heldout else _regime_blocks(args, args.regime)
    if "general_loss" in suites:
        general = TokenBlocks.load(args.general) if args.general else _regime_blocks(args, "general")
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


def _load(args):
    import torch

    from lfl_ray.models import load_model, load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    return model.to(device), load_tokenizer(args.model)


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
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    suites = tuple(dict.fromkeys(s for group in args.suite for s in SUITE_GROUPS[group]))
    chat = {"auto": None, "yes": True, "no": False}[args.chat]
    limits = {s: args.limit for s in suites} if args.limit is not None else {}
    spec = EvalSpec(suites=suites, limits=limits, seed=args.seed, batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens, chat=chat).validate()
    heldout, general = _blocks(args, suites)
    evaluator = MilestoneEvaluator(spec, args.model, heldout, general, require_primary=False)
    base = evaluator.base() if args.adapter else None
    if _use_vllm(args, suites):
        from lfl_ray.eval.backend import VLLMBackend
        from lfl_ray.models import resolve_model

        engine = VLLMBackend(resolve_model(args.model).location)
        result = evaluator.evaluate_backend(engine.with_adapter(args.adapter))
    else:
        model, tokenizer = _load(args)
        result = evaluator(model, tokenizer)
    print(format_table(result, base))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"result": result.to_json(), "base": base.to_json() if base else None,
                       "spec": spec.to_json()}, f, indent=1)
    return 0

