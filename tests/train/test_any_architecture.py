"""Trials on models that are not Llamas: tiny random Phi-3 and GPT-NeoX folders built from
configs (fast), and the real Gemma 3 270M asset (slow). LoRA adapts each architecture's own
modules for the ``all`` preset; full FT and LoRA both learn a repeated pattern."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from lfl_ray.methods import Full, Lora, apply_method
from lfl_ray.models import load_model
from lfl_ray.train.config import Budget, Resources, TrialConfig
from lfl_ray.train.loss import LossModule
from lfl_ray.train.trial import build_trainer

TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=256)
ARCHITECTURES = {  # model_type -> (extra config values, what LoRA 'all' adapts)
    "phi3": ({"num_key_value_heads": 2, "pad_token_id": 0}, {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    "gpt_neox": ({}, {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}),
}


def _blocks(vocab: int, seq_len: int = 32):
    from lfl_ray.data.blocks import TokenBlocks

    pattern = torch.randint(0, vocab, (40,), generator=torch.Generator().manual_seed(0))
    return TokenBlocks.from_stream(pattern.repeat(200), seq_len)


def _tiny_folder(root: Path, model_type: str) -> str:
    """A random model of ``model_type`` saved as a local HF folder (what a user's model looks like)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **TINY, **ARCHITECTURES[model_type][0])
    folder = root / model_type
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return str(folder)


def _loss(model_spec: str, method, blocks) -> float:
    model, _ = apply_method(load_model(model_spec), method)
    batch = blocks.select(range(8))
    with torch.no_grad():
        total, count = LossModule(model)(batch.input_ids, batch.attention_mask, batch.labels)
    return float(total / count)


def run_pair(model_spec: str, blocks, tmp_path: Path, *, steps: int, micro: int, lrs=(5e-3, 1e-3)) -> dict:
    """A LoRA (rank 4, all) and a full-FT trial on Ray Train; returns what each reached."""
    out = {}
    for method, lr in ((Lora(rank=4, targets="all"), lrs[0]), (Full(), lrs[1])):
        cfg = TrialConfig(model=model_spec, method=method, lr=lr, report_every=max(1, steps // 2),
                          budget=Budget(steps=steps, milestones=(), micro_batch_size=micro, global_batch_size=micro,
                                        warmup_steps=1, seq_len=blocks.seq_len),
                          resources=Resources(num_workers=1, cpus_per_worker=0.99)).validate()
        start = time.perf_counter()
        result = build_trainer(cfg, blocks, name=f"{Path(model_spec).name}-{method.name}",
                               storage_path=str(tmp_path / "store")).fit()
        assert result.error is None, result.error
        folder = Path(result.checkpoint.path) / "model"
        out[method.name] = dict(end=result.metrics["train_loss"], start=_loss(model_spec, method, blocks),
                                folder=folder, seconds=time.perf_counter() - start)
    return out


def _train_in_process(model_spec: str, method, lr: float, blocks, steps: int) -> tuple[float, float, object]:
    """One worker's trial outside Ray (``build_training``, what each Ray Train worker runs):
    (first step's loss, last step's loss, the trained model)."""
    from lfl_ray.train.setup import build_training

    cfg = TrialConfig(model=model_spec, method=method, lr=lr,
                      budget=Budget(steps=steps, milestones=(), micro_batch_size=4, global_batch_size=4,
                                    warmup_steps=1, seq_len=blocks.seq_len),
                      resources=Resources(num_workers=1, cpus_per_worker=1.0)).validate()
    run = build_training(cfg, blocks)
    run.model.train()
    losses = []
    for index in range(steps):
        loss_sum, count = run.loss_of(index)
        run.backward(loss_sum / count, last=True)
        run.optimizer_step()
        losses.append(float(loss_sum.detach() / count))
    run.close()
    return losses[0], losses[-1], run.model


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_lora_and_full_trials_on_a_tiny_non_llama_model(tmp_path, model_type):
    folder = _tiny_folder(tmp_path, model_type)
    blocks = _blocks(TINY["vocab_size"])
    first, last, model = _train_in_process(folder, Lora(rank=4, targets="all"), 2e-2, blocks, steps=12)
    adapted = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == ARCHITECTURES[model_type][1]
    assert last < first - 0.3, ("lora", first, last)
    first, last, model = _train_in_process(folder, Full(), 3e-3, blocks, steps=12)
    assert model.config.model_type == model_type and all(p.requires_grad for p in model.parameters())
    assert last < first - 0.3, ("full", first, last)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_ray_trials_on_a_tiny_non_llama_model(ray_local, tmp_path, model_type):
    """The same on Ray Train, checkpoints included (about a minute per architecture)."""
    folder = _tiny_folder(tmp_path, model_type)
    blocks = _blocks(TINY["vocab_size"])
    got = run_pair(folder, blocks, tmp_path, steps=8, micro=4, lrs=(2e-2, 3e-3))
    adapter = json.loads((got["lora"]["folder"] / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == ARCHITECTURES[model_type][1]
    assert json.loads((got["full"]["folder"] / "config.json").read_text())["model_type"] == model_type
    for name, reached in got.items():
        assert reached["end"] < reached["start"] - 0.3, (name, reached)


@pytest.mark.slow
def test_lora_and_full_trials_on_gemma3_270m(ray_local, tmp_path):
    """The real second architecture offline (``lfl-ray assets fetch --gemma`` first)."""
    from lfl_ray.models import GEMMA3, gemma3_dir

    if not (gemma3_dir() / "config.json").exists():
        pytest.skip("Gemma 3 270M is not converted: run `lfl-ray assets fetch --gemma`")
    blocks = _blocks(262144, seq_len=64)
    start = time.perf_counter()
    got = run_pair(GEMMA3, blocks, tmp_path, steps=4, micro=2, lrs=(2e-3, 5e-5))
    adapter = json.loads((got["lora"]["folder"] / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"}
    assert json.loads((got["full"]["folder"] / "config.json").read_text())["model_type"] == "gemma3_text"
    for name, reached in got.items():
        assert reached["end"] < reached["start"], (name, reached)
    print(f"gemma3-270m: LoRA trial {got['lora']['seconds']:.0f} s, full trial {got['full']['seconds']:.0f} s, "
          f"both {time.perf_counter() - start:.0f} s; losses {[(k, v['start'], v['end']) for k, v in got.items()]}")
