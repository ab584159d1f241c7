"""Trial checkpoints: the trainable weights, the optimizer state and the step.

LoRA saves only the adapter (peft format, loadable with ``PeftModel.from_pretrained``);
full finetuning saves a Hugging Face model folder. Under ZeRO-3 the parameters are
sharded, so they are gathered first (otherwise peft writes empty [0]-shaped adapters).
Files are written to a temp folder that is renamed into place, so a crash mid-write
leaves the previous good state.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import torch

MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"
OPTIM_FILE = "optimizer.pt"


def _gathered(params, zero3: bool):
    if not zero3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(params), modifier_rank=None)


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def save_model(model, folder: Path, *, zero3: bool, is_writer: bool) -> None:
    """Save the adapter (LoRA) or the full model into ``folder``; all ranks must call."""
    trainable = [p for p in model.parameters() if p.requires_grad] if is_lora(model) else list(model.parameters())
    with _gathered(trainable, zero3):
        if is_writer:
            folder.mkdir(parents=True, exist_ok=True)
            if is_lora(model):
                model.save_pretrained(folder)
            else:
                state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
                model.save_pretrained(folder, state_dict=state)


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, *, zero3: bool,
                    is_writer: bool, save_optimizer: bool) -> None:
    """Write a complete checkpoint into ``folder`` (created; written via a temp sibling)."""
    tmp = folder.with_name(folder.name + ".partial")
    if is_writer:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    save_model(model, tmp / MODEL_DIR, zero3=zero3, is_writer=is_writer)
    if is_writer:
        if save_optimizer and not zero3 and optimizer is not None:
            torch.save({"optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None},
                       tmp / OPTIM_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    """Restore weights (and optimizer/scheduler when saved) from ``folder``; returns state."""
    folder = Path(folder)
    model_dir = folder / MODEL_DIR
    if is_lora(model):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(model_dir / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights)
    else:
        from safetensors.torch import load_file

        weights = {}
        for shard in sorted(model_dir.glob("*.safetensors")):
            weights.update(load_file(str(shard)))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]  # tied embeddings
        if real_missing or unexpected:
            raise RuntimeError(f"checkpoint {folder} does not fit the model: missing {real_missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    optim_path = folder / OPTIM_FILE
    if optim_path.exists() and optimizer is not None:
        blob = torch.load(optim_path, weights_only=False)
        optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None and blob.get("scheduler") is not None:
            scheduler.load_state_dict(blob["scheduler"])
    return json.loads((folder / STATE_FILE).read_text())
