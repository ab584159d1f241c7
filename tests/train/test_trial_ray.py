"""One real trial on Ray Train: full and LoRA learn, on 1 and 2 workers, DDP and DeepSpeed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from lfl_ray.methods import Full, Lora, apply_method
from lfl_ray.models import load_model
from lfl_ray.train.checkpoint import load_checkpoint
from lfl_ray.train.config import Budget, Resources, TrialConfig
from lfl_ray.train.trial import build_trainer


def _fit(cfg, blocks, tmp_path, name):
    result = build_trainer(cfg, blocks, name=name, storage_path=str(tmp_path / "store")).fit()
    assert result.error is None, result.error
    return result


def _cfg(method, workers, **resources):
    lr = 5e-3 if isinstance(method, Lora) else 2e-3
    return TrialConfig(method=method, lr=lr, budget=Budget(steps=16, milestones=(8,), micro_batch_size=4,
                       global_batch_size=4 * workers, warmup_steps=2), report_every=4,
                       resources=Resources(num_workers=workers, cpus_per_worker=0.99, **resources))


def _logits(model, blocks):
    model.eval()
    with torch.no_grad():
        return model(input_ids=blocks.input_ids[:2]).logits


def _base_loss(blocks, method) -> float:
    from lfl_ray.train.loss import LossModule

    model, _ = apply_method(load_model("tiny-llama", seed=0), method)
    batch = blocks.select(range(16))
    with torch.no_grad():
        total, count = LossModule(model)(batch.input_ids, batch.attention_mask, batch.labels)
    return float(total / count)


@pytest.mark.parametrize("method,workers", [(Full(), 1), (Lora(rank=8), 2)], ids=["full-1w", "lora-2w"])
def test_trial_reduces_loss_and_checkpoints(ray_local, pattern_blocks, tmp_path, method, workers):
    cfg = _cfg(method, workers)
    temp_checkpoints = set(Path(tempfile.gettempdir()).glob("lfl-ckpt-*"))
    result = _fit(cfg, pattern_blocks, tmp_path, f"trial-{method.name}-{workers}")
    # Each milestone's local copy is removed once Ray has persisted it (they once filled /tmp).
    assert set(Path(tempfile.gettempdir()).glob("lfl-ckpt-*")) <= temp_checkpoints
    _check_no_preemption_watcher()
    start = _base_loss(pattern_blocks, method)
    end = result.metrics["train_loss"]
    assert result.metrics["tokens"] == 16 * cfg.budget.global_batch_size * 64
    assert end < start - 0.3, (start, end)
    _check_checkpoint(result.checkpoint.path, method, pattern_blocks)


def _check_no_preemption_watcher():
    """A local cluster's trials start no preemption watcher (ray_runtime: nothing is drained)."""
    from ray.util.state import list_actors

    started = {a.class_name for a in list_actors(detail=True, limit=10_000)}
    assert "TrainController" in started and "PreemptionWatcher" not in started, started


def _check_checkpoint(path, method, blocks):
    """The saved checkpoint reloads two ways (ours, and plain HF/peft) to the same logits."""
    folder = Path(path)
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["step"] == 16
    ours, _ = apply_method(load_model("tiny-llama", seed=0), method)
    load_checkpoint(folder, ours, None, None)
    if isinstance(method, Lora):
        from peft import PeftModel
        from safetensors.torch import load_file

        weights = load_file(str(folder / "model" / "adapter_model.safetensors"))
        assert weights and all(t.numel() > 0 for t in weights.values())
        assert any("lora_B" in k and t.abs().sum() > 0 for k, t in weights.items())  # trained
        plain = PeftModel.from_pretrained(load_model("tiny-llama", seed=0), str(folder / "model"))
    else:
        from transformers import AutoModelForCausalLM

        plain = AutoModelForCausalLM.from_pretrained(str(folder / "model"))
    base = load_model("tiny-llama", seed=0)
    assert torch.allclose(_logits(ours, blocks), _logits(plain, blocks), atol=1e-5)
    assert not torch.allclose(_logits(base, blocks), _logits(plain, blocks), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("stage,method", [(2, Full()), (3, Full()), (3, Lora(rank=8))],
                         ids=["zero2-full", "zero3-full", "zero3-lora"])
def test_deepspeed_zero_on_cpu(ray_local, pattern_blocks, tmp_path, stage, method):
    cfg = _cfg(method, 2, backend="deepspeed", zero_stage=stage)
    result = _fit(cfg, pattern_blocks, tmp_path, f"ds{stage}-{method.name}")
    assert result.metrics["train_loss"] < _base_loss(pattern_blocks, method) - 0.3
    _check_checkpoint(result.checkpoint.path, method, pattern_blocks)
