"""With split_loss_evals the DDP ranks split a milestone's loss evals; rank 0 joins them and
runs the rest. Without it (the CPU default) rank 0 scores everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_blocks import random_blocks
from lfl_ray.eval import EvalSpec, MilestoneEvaluator
from lfl_ray.methods import Full
from lfl_ray.models import load_model, load_tokenizer
from lfl_ray.train.checkpoint import load_checkpoint
from lfl_ray.train.config import Budget, Resources, TrialConfig
from lfl_ray.train.trial import build_trainer


@pytest.mark.timeout(600)
def test_ddp_ranks_split_the_milestone_loss_evals(ray_local, pattern_blocks, eval_cache, tmp_path):
    spec = EvalSpec(suites=("heldout_loss", "general_loss", "drift", "winogrande"),
                    limits={"winogrande": 4}, batch_size=4)
    evaluator = MilestoneEvaluator(spec, "tiny-llama", random_blocks(7, 24, seed=0, docs=3),
                                   random_blocks(5, 24, seed=1, docs=5))
    evaluator.base()  # the drift reference and the items ship with the evaluator
    cfg = TrialConfig(method=Full(), lr=2e-3, report_every=2, split_loss_evals=True,
                      budget=Budget(steps=6, milestones=(6,), micro_batch_size=2, global_batch_size=4, warmup_steps=1),
                      resources=Resources(num_workers=2, cpus_per_worker=0.99))  # on GPUs by default
    result = build_trainer(cfg, pattern_blocks, name="split-eval", storage_path=str(tmp_path / "store"),
                           evaluator=evaluator).fit()
    assert result.error is None, result.error
    assert result.metrics["eval_loss_ranks"] == 2.0  # both ranks scored loss blocks

    model = load_model("tiny-llama", seed=0)
    load_checkpoint(Path(result.checkpoint.path), model, None, None)
    alone = evaluator(model, load_tokenizer("tiny-llama"))  # one process, every block
    for metric in ("heldout_loss", "heldout_loss_se", "general_loss", "general_loss_se", "drift_kl",
                   "winogrande_acc"):
        assert result.metrics[metric] == pytest.approx(alone.metrics[metric], rel=1e-4, abs=1e-6), metric
    assert result.metrics["drift_kl"] > 0  # the trained model moved away from the base


def test_without_the_split_rank_0_scores_every_block(ray_local, pattern_blocks, eval_cache, tmp_path):
    spec = EvalSpec(suites=("heldout_loss", "general_loss", "drift"), batch_size=4)
    evaluator = MilestoneEvaluator(spec, "tiny-llama", random_blocks(5, 24, seed=0, docs=3),
                                   random_blocks(3, 24, seed=1, docs=3))
    evaluator.base()
    cfg = TrialConfig(method=Full(), lr=2e-3, report_every=1,
                      budget=Budget(steps=2, milestones=(2,), micro_batch_size=2, global_batch_size=4, warmup_steps=1),
                      resources=Resources(num_workers=2, cpus_per_worker=0.99))
    result = build_trainer(cfg, pattern_blocks, name="rank0-eval", storage_path=str(tmp_path / "store"),
                           evaluator=evaluator).fit()
    assert result.error is None, result.error
    assert "eval_loss_ranks" not in result.metrics and result.metrics["drift_kl"] > 0
