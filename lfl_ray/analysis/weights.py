"""A trial's tuned weights beside the base weights, one matrix at a time.

- Full FT checkpoint (HF folder with ``model.safetensors`` or a sharded index): each tuned
  matrix is read alone from the safetensors files; only the base model is held in memory.
- LoRA checkpoint (peft adapter folder): the adapter is loaded onto the base model and each
  adapted layer is merged on its own (peft's per-layer ``merge``, the same arithmetic as
  ``merge_and_unload()``, DoRA included), so the merged weight never needs a second model.

Matrices come out in float32 on the requested device.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from lfl_ray.errors import ConfigError

LAYER = re.compile(r"layers\.(\d+)\.")
SKIPPED = ("lm_head", "embed_tokens", "wte", "embed_out")


@dataclass(frozen=True)
class MatrixPair:
    """One weight matrix before and after finetuning."""

    name: str
    """Module path without peft's prefixes, e.g. ``model.layers.0.self_attn.q_proj``."""
    base: torch.Tensor
    tuned: torch.Tensor

    @property
    def kind(self) -> str:
        """Matrix type: the module's leaf name (``q_proj``, ``down_proj``...)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def layer(self) -> int | None:
        found = LAYER.search(self.name)
        return int(found.group(1)) if found else None


def model_folder(folder: str | Path) -> Path:
    """The folder holding the weights: ``folder`` itself, or its ``model/`` subfolder (the
    layout of the trainer's Ray checkpoints, beside ``trainer_state.json``)."""
    folder = Path(folder)
    for candidate in (folder, folder / "model"):
        if (candidate / "adapter_config.json").exists() or (candidate / "config.json").exists():
            return candidate
    raise ConfigError("checkpoint", str(folder), "must be a folder (or hold a model/ subfolder) "
                      "with adapter_config.json (peft adapter) or config.json (HF model)")


def checkpoint_kind(folder: str | Path) -> str:
    """``lora`` for a peft adapter folder, ``full`` for a HF model folder."""
    return "lora" if (model_folder(folder) / "adapter_config.json").exists() else "full"


def _clean(name: str) -> str:
    return name.removeprefix("base_model.model.")


def _safetensors_index(folder: Path) -> dict[str, Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {k: folder / v for k, v in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.exists():
        raise ConfigError("checkpoint", str(folder), "a full-FT folder must hold model.safetensors "
                          "or model.safetensors.index.json")
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as handle:
        return {k: single for k in handle.keys()}


def linear_names(model: torch.nn.Module) -> list[str]:
    """Linear modules that finetuning changes (the LM head and embeddings excluded)."""
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith(SKIPPED)]


def full_pairs(base_model: torch.nn.Module, folder: str | Path,
               device: str = "cpu") -> Iterator[MatrixPair]:
    """Pairs for a full-FT checkpoint: every linear matrix of the base model."""
    from safetensors import safe_open

    folder = Path(folder)
    where = _safetensors_index(folder)
    modules = dict(base_model.named_modules())
    for name in linear_names(base_model):
        key = f"{name}.weight"
        if key not in where:
            raise ConfigError("checkpoint", str(folder), f"must hold tensor {key!r} (the base "
                              "model's architecture); is it a checkpoint of another model?")
        with safe_open(str(where[key]), framework="pt") as handle:
            tuned = handle.get_tensor(key)
        base = modules[name].weight.detach()
        yield MatrixPair(name, base.to(device, torch.float32), tuned.to(device, torch.float32))


def _lora_layers(model) -> list[tuple[str, torch.nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(name, layer) for name, layer in model.named_modules()
            if isinstance(layer, LoraLayer) and hasattr(layer, "get_base_layer")]


def lora_pairs(peft_model, device: str = "cpu", unload: bool = True) -> Iterator[MatrixPair]:
    """Pairs for a peft model: each adapted layer merged on its own (active adapter), then
    restored bit for bit (peft's unmerge subtracts the update again, which leaves rounding
    error in the base weights: the next trial would then see another base, and a shared
    ``BaseSVDs`` would decompose every matrix again). With ``unload`` the adapter is removed
    at the end, so the base model can serve the next trial.
    """
    try:
        for name, layer in _lora_layers(peft_model):
            weight = layer.get_base_layer().weight
            saved = weight.detach().clone()
            base = weight.detach().to(device, torch.float32, copy=True)
            layer.merge()
            tuned = weight.detach().to(device, torch.float32, copy=True)
            layer.unmerge()
            with torch.no_grad():
                weight.copy_(saved)
            yield MatrixPair(_clean(name), base, tuned)
    finally:
        if unload:
            peft_model.unload()


def open_pairs(model_spec: str, checkpoint: str | Path, device: str = "cpu",
               base_model: torch.nn.Module | None = None) -> tuple[int, Iterator[MatrixPair]]:
    """How many matrices a checkpoint changed, and an iterator of their (base, tuned) pairs."""
    from lfl_ray.models import load_model

    checkpoint = model_folder(checkpoint)
    kind = checkpoint_kind(checkpoint)
    base_model = base_model if base_model is not None else load_model(model_spec)
    if kind == "lora":
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(base_model, str(checkpoint))
        return len(_lora_layers(peft_model)), lora_pairs(peft_model, device)
    return len(linear_names(base_model)), full_pairs(base_model, checkpoint, device)
