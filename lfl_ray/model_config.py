"""What a model is, from its config alone: linear layers, target presets, size, positions.

The model is built on the meta device (no weights, no memory), so a 7B model's layout is
known in a second before any Ray work: which linear modules exist and their shapes, which of
them the presets ``attention``, ``mlp`` and ``all`` mean for this architecture (from where
each module sits: inside the decoder layer's attention block or its MLP block), the
parameter count for cost estimates, and the longest sequence it takes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from lfl_ray.errors import ConfigError

ATTENTION_PARENTS = ("attn", "attention")
"""Substrings of a module path that mark an attention block (self_attn, attention, attn)."""
MLP_PARENTS = ("mlp", "feed_forward", "ffn")
"""Substrings of a module path that mark a feed-forward block."""


def load_config(spec: str):
    """The transformers config of a model spec, or None when it cannot be had offline."""
    from transformers import AutoConfig, LlamaConfig

    from lfl_ray.models import SMOLLM2, TINY, TINY_LLAMA_CONFIG, smollm2_dir

    if spec == TINY:
        return LlamaConfig(**TINY_LLAMA_CONFIG)
    if spec == SMOLLM2:
        folder = smollm2_dir()
        return AutoConfig.from_pretrained(folder) if (folder / "config.json").exists() else None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError("model", spec, "a local model folder must hold config.json")
        try:
            return AutoConfig.from_pretrained(path)
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise ConfigError("model", spec, f"must hold a transformers config.json ({exc})") from exc
    try:
        return AutoConfig.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=16)
def _layout(config_json: str) -> tuple[dict, dict, int]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    data = json.loads(config_json)
    config = AutoConfig.for_model(**data)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes: dict[str, tuple[int, int]] = {}
    kinds: dict[str, str] = {}
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf == "lm_head":
            continue
        shapes[leaf] = (module.in_features, module.out_features)
        parents = path.lower().split(".")[:-1]
        if any(p for p in parents if any(a in p for a in ATTENTION_PARENTS)):
            kinds[leaf] = "attention"
        elif any(p for p in parents if any(m in p for m in MLP_PARENTS)):
            kinds[leaf] = "mlp"
        else:
            kinds.setdefault(leaf, "other")
    params = sum(p.numel() for p in model.parameters())
    return shapes, kinds, params


def _key(config) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def linear_layers(config) -> dict[str, tuple[int, int]]:
    """Leaf names of the model's linear layers (not the LM head) -> (in_features, out_features)."""
    return dict(_layout(_key(config))[0])


def preset_targets(config, preset: str) -> list[str]:
    """The module names that ``attention``, ``mlp`` or ``all`` mean for this architecture."""
    _shapes, kinds, _ = _layout(_key(config))
    if preset == "all":
        names = [n for n, k in kinds.items() if k in ("attention", "mlp")]
    elif preset in ("attention", "mlp"):
        names = [n for n, k in kinds.items() if k == preset]
    else:
        raise ConfigError("lora.targets", preset, "must be one of ['attention', 'mlp', 'all'] or module names")
    if not names:
        raise ConfigError("lora.targets", preset, f"matches no linear module of this {config.model_type} model; "
                          f"list modules from {sorted(kinds)}")
    return names


def parameter_count(config) -> int:
    """Parameters of the model (tied embeddings counted once)."""
    return _layout(_key(config))[2]


def max_positions(config) -> int | None:
    """The longest sequence the model's position embeddings cover (None if unbounded)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
