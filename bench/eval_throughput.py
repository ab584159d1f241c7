"""Evaluation throughput: multiple-choice examples/s and generation tokens/s, batched vs one at a
time, through lfl-ray's HFBackend; and what the base-model eval cache saves over a sweep.

- multiple choice: the first ``--mc-items`` HellaSwag validation items (4 endings each),
  scored by ``choice_scores`` at batch 1 and at ``--batch``;
- generation: ``--gen-prompts`` HellaSwag contexts continued greedily for ``--new-tokens``
  tokens (no stop strings), at batch 1 and at ``--batch``; tokens/s counts generated tokens;
- base cache: ``MilestoneEvaluator.base()`` on the loss suites (held-out loss, general loss,
  drift) cold (a fresh cache key) and warm (read back from disk).

    .venv/bin/python bench/eval_throughput.py --model smollm2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import MODELS, save_results, synthetic_blocks, table  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def base_cache_saving(model: str, rows: int, trials: int) -> dict:
    """Cold vs warm ``base()`` on fresh cache entries (removed afterwards)."""
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    spec = EvalSpec(suites=("heldout_loss", "general_loss", "drift"), seed=time.time_ns() % 10**9, batch_size=8)
    evaluator = MilestoneEvaluator(spec, MODELS[model], synthetic_blocks(rows, 256, seed=1),
                                   synthetic_blocks(rows, 256, seed=2))
    paths = [evaluator._cache_path(s, "torch.float32") for s in spec.suites]
    try:
        _, cold = timed(evaluator.base)
        _, warm = timed(MilestoneEvaluator(spec, MODELS[model], evaluator.heldout, evaluator.general).base)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
            path.with_suffix(".pt").unlink(missing_ok=True)
    return {"cold_s": cold, "warm_s": warm, "trials": trials,
            "saved_per_sweep_s": (trials - 1) * cold + (cold - warm),
            "note": f"{rows} held-out + {rows} general rows x 256 tokens"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    parser.add_argument("--batch", type=int, default=8, help="batched size (scoring rows / generate prompts)")
    parser.add_argument("--mc-items", type=int, default=16)
    parser.add_argument("--gen-prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--cache-rows", type=int, default=12, help="rows per loss suite for the cache test")
    parser.add_argument("--trials", type=int, default=6, help="trials in the sweep the cache saving is quoted for")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from lfl_ray.eval.backend import HFBackend
    from lfl_ray.eval.hellaswag import load_items
    from lfl_ray.eval.multiple_choice import choice_scores
    from lfl_ray.models import load_model, load_tokenizer

    torch.set_num_threads(args.threads)
    model = load_model(MODELS[args.model]).eval()
    tokenizer = load_tokenizer(MODELS[args.model])
    items = load_items()[: max(args.mc_items, args.gen_prompts)]
    rows = []
    for batch in (1, args.batch):
        backend = HFBackend(model, tokenizer, batch_size=batch)
        print(f"[eval] multiple choice, batch {batch} ...", flush=True)
        scores, seconds = timed(lambda: choice_scores(backend, items[: args.mc_items], desc=""))
        rows.append({"task": "multiple choice (HellaSwag, 4 endings)", "batch": batch, "n": args.mc_items,
                     "seconds": seconds, "rate": args.mc_items / seconds, "unit": "examples/s"})
        print(f"[eval] generation, batch {batch} ...", flush=True)
        prompts = [item.contexts[0] for item in items[: args.gen_prompts]]
        with torch.no_grad():
            texts, seconds = timed(lambda: backend.generate(prompts, max_new_tokens=args.new_tokens, desc=""))
        generated = sum(len(tokenizer(t[0], add_special_tokens=False)["input_ids"]) for t in texts)
        rows.append({"task": f"generation (greedy, {args.new_tokens} new tokens)", "batch": batch,
                     "n": args.gen_prompts, "seconds": seconds, "rate": generated / seconds, "unit": "tokens/s"})
    for row in rows:
        one = next(r for r in rows if r["task"] == row["task"] and r["batch"] == 1)
        row["speedup"] = row["rate"] / one["rate"]
    print(f"\nEvaluation throughput, {args.model}, fp32, {args.threads} threads")
    print(table(rows, [("task", "task", ""), ("batch", "batch", ""), ("n", "items", ""),
                       ("seconds", "s", ".1f"), ("rate", "rate", ".2f"), ("unit", "unit", ""),
                       ("speedup", "x batch 1", ".2f")]))
    print("[eval] base-model cache: cold vs warm ...", flush=True)
    cache = base_cache_saving(args.model, args.cache_rows, args.trials)
    print(f"\nBase-model eval (loss suites, {cache['note']}): cold {cache['cold_s']:.1f} s, warm (disk cache) "
          f"{cache['warm_s']:.2f} s. A {args.trials}-trial sweep computes it once instead of once per trial, and a "
          f"re-run sweep not at all: {cache['saved_per_sweep_s']:.0f} s saved against evaluating the base in "
          "every trial.")
    save_results(f"eval_throughput_{args.model}", rows, vars(args), {"base_cache": cache})
    return {"rows": rows, "cache": cache}


if __name__ == "__main__":
    main()
