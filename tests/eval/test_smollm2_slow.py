"""SmolLM2-135M-Instruct scores above chance on fixed 200-example subsets (minutes on CPU)."""

from __future__ import annotations

import pytest

from lfl_ray.eval import EvalSpec, MilestoneEvaluator


@pytest.mark.slow
def test_smollm2_is_above_chance_on_hellaswag_and_arc(eval_cache):
    import torch

    from lfl_ray.models import load_model, load_tokenizer

    # On a shared 2-core machine two OpenMP threads lose 3-10x to contention; one is steadier.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    spec = EvalSpec(suites=("hellaswag", "arc_challenge"),
                    limits={"hellaswag": 200, "arc_challenge": 200}, seed=0, batch_size=8)
    evaluator = MilestoneEvaluator(spec, "smollm2-135m-instruct", None, None, require_primary=False)
    try:
        result = evaluator(load_model("smollm2-135m-instruct"),
                           load_tokenizer("smollm2-135m-instruct"))
    finally:
        torch.set_num_threads(threads)
    m = result.metrics
    for task in ("hellaswag", "arc_challenge"):
        print(f"{task}: acc {m[f'{task}_acc']:.3f} ± {m[f'{task}_acc_se']:.3f}, "
              f"acc_norm {m[f'{task}_acc_norm']:.3f} ± {m[f'{task}_acc_norm_se']:.3f}, "
              f"margin {m[f'{task}_margin']:.3f} ± {m[f'{task}_margin_se']:.3f} (n=200)")
    # Chance is 0.25 (4 choices). Seen here: HellaSwag 0.410 +- 0.035, ARC-Challenge
    # 0.300 +- 0.032; a 135M model is only about 1.5 SE above chance on ARC at n=200, so
    # demand 2 SE on HellaSwag and the point estimate above chance on ARC.
    assert m["hellaswag_acc_norm"] - 2 * m["hellaswag_acc_norm_se"] > 0.25, m
    assert m["arc_challenge_acc_norm"] > 0.25, m
