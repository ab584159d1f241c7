"""What a model is, from its config alone: linear layers, target presets, size, positions.

The model is built on the meta device (no weights, no memory), so a 7B model's layout is
known in a second before any Ray work: which linear modules its decoder has and their
shapes, which of them the presets ``attention``, ``mlp`` and ``all`` mean for this
architecture, the parameter count for cost estimates, and the longest sequence it takes.

Presets come from where each module sits in the module tree, not from a table of names:
a linear layer inside the decoder layer's attention block (``self_attn``, ``attention``,
``attn``...) is ``attention``, one inside its feed-forward block (``mlp``,
``feed_forward``...) is ``mlp``. So Llama and Mistral get q/k/v/o + gate/up/down, Phi-3
``qkv_proj``/``o_proj`` + ``gate_up_proj``/``down_proj``, GPT-NeoX ``query_key_value``/
``dense`` + ``dense_h_to_4h``/``dense_4h_to_h``, and a model nobody listed gets its own.
Only the decoder (``model.get_decoder()``) counts: a vision tower's ``q_proj`` is not the
language model's, and the LM head is never a target.

The same function reads a loaded model (``layout_of``), so the trial adapts exactly what
the dry run said it would.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lfl_ray.errors import ConfigError

PRESET_NAMES = ("attention", "mlp", "all")
"""Target presets every architecture has (``all`` = ``attention`` + ``mlp``)."""
ATTENTION_PARENTS = ("attn", "attention")
"""Substrings of a module path component that mark an attention block (self_attn, attention, attn)."""
MLP_PARENTS = ("mlp", "feed_forward", "ffn", "moe", "expert")
"""Substrings of a module path component that mark a feed-forward block."""
ROUTERS = ("gate", "router")
"""Leaf names of mixture-of-experts routers: linear, inside the MLP block, never a preset target."""


@dataclass(frozen=True)
class LinearModule:
    """One linear layer of the decoder."""

    path: str
    """Its module path, e.g. ``model.layers.0.self_attn.q_proj``."""
    kind: str
    """``attention``, ``mlp`` or ``other`` (from the blocks it sits in)."""
    in_features: int
    out_features: int

    @property
    def leaf(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Layout:
    """The linear layers of a model's decoder, and its size."""

    model_type: str
    modules: tuple[LinearModule, ...]
    """Linear layers inside the decoder, in module order (the LM head is not one)."""
    outside: tuple[str, ...]
    """Paths of linear layers outside the decoder (a vision tower, a projector; not the LM head)."""
    params: int
    """Parameters, tied embeddings counted once."""
    matmul_params: int
    """Parameters a token multiplies through: all but the input (and position) embeddings,
    which are lookups; a head tied to the input embedding is a matmul and counts."""

    def names(self, kind: str | None = None) -> list[str]:
        """Distinct leaf names (of one kind, if given), in module order."""
        return list(dict.fromkeys(m.leaf for m in self.modules if kind is None or m.kind == kind))

    def shapes(self) -> dict[str, tuple[int, int]]:
        """Leaf name -> (in_features, out_features) of its narrowest occurrence."""
        out: dict[str, tuple[int, int]] = {}
        for m in self.modules:
            if m.leaf not in out or min(m.in_features, m.out_features) < min(out[m.leaf]):
                out[m.leaf] = (m.in_features, m.out_features)
        return out

    def select(self, targets, field: str = "lora.targets") -> list[LinearModule]:
        """The decoder's linear layers a preset or a list of module names means."""
        if isinstance(targets, str):
            if targets not in PRESET_NAMES:
                raise ConfigError(field, targets, f"must be one of {list(PRESET_NAMES)} or a list of module names "
                                  f"of this {self.model_type} model: {self.names()}")
            kinds = ("attention", "mlp") if targets == "all" else (targets,)
            chosen = [m for m in self.modules if m.kind in kinds]
            if not chosen:
                raise ConfigError(field, targets, f"matches no linear module of this {self.model_type} model "
                                  f"(its linear modules: {self._listing()}); list module names instead")
            return chosen
        names = list(targets)
        unknown = [n for n in names if not any(_matches(m.path, n) for m in self.modules)]
        if unknown:
            raise ConfigError(field, unknown if len(unknown) > 1 else unknown[0],
                              f"must be linear modules of this {self.model_type} model: {self._listing()}")
        return [m for m in self.modules if any(_matches(m.path, n) for n in names)]

    def _listing(self) -> str:
        groups = {kind: self.names(kind) for kind in ("attention", "mlp", "other")}
        return "; ".join(f"{kind} {names}" for kind, names in groups.items() if names)

    def peft_targets(self, chosen: list[LinearModule]) -> list[str] | str:
        """What peft's ``target_modules`` must be to adapt exactly ``chosen``: their leaf names
        when no other linear layer shares one of them, else a regex over their paths (peft
        matches a string with ``re.fullmatch``)."""
        paths = {m.path for m in chosen}
        leaves = list(dict.fromkeys(m.leaf for m in chosen))
        others = [p for p in [m.path for m in self.modules] + list(self.outside) if p not in paths]
        if not any(p.rsplit(".", 1)[-1] in leaves for p in others):
            return leaves
        patterns = sorted({re.sub(r"\\\.\d+\\\.", r"\\.\\d+\\.", re.escape(p)) for p in paths})
        return "|".join(f"(?:{p})" for p in patterns)


def _matches(path: str, name: str) -> bool:
    """peft's rule for a name in ``target_modules``: the whole path or its last components."""
    return path == name or path.endswith("." + name)


def _kind(parents: list[str], leaf: str) -> str:
    for part in reversed(parents):  # the innermost block decides (an MLP inside "attention_block" is an MLP)
        if any(a in part for a in ATTENTION_PARENTS):
            return "attention"
        if any(m in part for m in MLP_PARENTS):
            return "other" if leaf in ROUTERS else "mlp"
    return "other"


def _is_linear(module) -> bool:
    import torch

    if isinstance(module, torch.nn.Linear):
        return True
    from transformers.pytorch_utils import Conv1D  # GPT-2 style: a linear layer with a transposed weight

    return isinstance(module, Conv1D)


def _shape(module) -> tuple[int, int]:
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape  # Conv1D keeps (in, out)
    return int(rows), int(cols)


def layout_of(model) -> Layout:
    """The layout of a built model (on any device, the meta device included)."""
    import torch

    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", type(model).__name__)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    prefix = next((p for p, m in model.named_modules() if m is decoder), None) if decoder is not None else None
    inside, outside = [], []
    for path, module in model.named_modules():
        if module is head or not _is_linear(module) or path.rsplit(".", 1)[-1] == "lm_head":
            continue
        if prefix is not None and not (prefix == "" or path.startswith(prefix + ".")):
            outside.append(path)
            continue
        parents = path.lower().split(".")[:-1]
        if prefix:
            parents = parents[len(prefix.split(".")):]
        inside.append(LinearModule(path, _kind(parents, path.rsplit(".", 1)[-1]), *_shape(module)))
    params = {id(p): p.numel() for p in model.parameters()}
    lookups = {id(p): p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding)
               for p in m.parameters(recurse=False)}
    tied_head = head is not None and id(head.weight) in lookups
    matmul = sum(params.values()) - sum(lookups.values()) + (head.weight.numel() if tied_head else 0)
    return Layout(model_type, tuple(inside), tuple(outside), sum(params.values()), matmul)


_LAYOUTS: dict[str, Layout] = {}


def layout(config) -> Layout:
    """The layout of the causal LM that ``config`` describes, built once on the meta device."""
    key = json.dumps(config.to_dict(), sort_keys=True, default=str)
    if key not in _LAYOUTS:
        import torch
        from transformers import AutoModelForCausalLM

        try:
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
        except (ValueError, KeyError) as exc:
            raise ConfigError("model", getattr(config, "model_type", None),
                              f"must be a causal language model transformers can build ({exc})") from exc
        _LAYOUTS[key] = layout_of(model)
    return _LAYOUTS[key]


def load_config(spec: str):
    """The transformers config of a model spec, or None when it cannot be had.

    A hub id is read from the local HF cache first, then from the hub unless
    ``HF_HUB_OFFLINE`` is set (only ``config.json`` is fetched)."""
    from transformers import AutoConfig, LlamaConfig

    from lfl_ray.models import BUILTIN_FOLDERS, TINY, TINY_LLAMA_CONFIG

    if spec == TINY:
        return LlamaConfig(**TINY_LLAMA_CONFIG)
    if spec in BUILTIN_FOLDERS:
        folder = BUILTIN_FOLDERS[spec]()
        return AutoConfig.from_pretrained(folder) if (folder / "config.json").exists() else None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError("model", spec, "a local model folder must hold config.json")
        try:
            return AutoConfig.from_pretrained(path)
        except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
            raise ConfigError("model", spec, f"must hold a transformers config.json ({exc})") from exc
    try:
        return AutoConfig.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError):
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return None
    try:
        return AutoConfig.from_pretrained(spec)
    except (OSError, ValueError):
        return None


def builtin_layout(spec: str) -> Layout | None:
    """The layout of a built-in model without reading its weights (None for other specs)."""
    from transformers import LlamaConfig

    from lfl_ray.models import BUILTIN_MODELS, LLAMA_BUILTINS, TINY_LLAMA_CONFIG

    if spec not in BUILTIN_MODELS:
        return None
    config = load_config(spec)
    if config is None and spec in LLAMA_BUILTINS:  # not converted yet: its layout is tiny-llama's
        config = LlamaConfig(**TINY_LLAMA_CONFIG)
    return None if config is None else layout(config)


def target_modules(spec: str, targets) -> list[str] | None:
    """The module names a LoRA ``targets`` (preset or list) adapts on model ``spec``, from its
    config; None when the config cannot be had (the trial resolves them when it loads the model)."""
    config = load_config(spec)
    return None if config is None else list(dict.fromkeys(m.leaf for m in layout(config).select(targets)))


def linear_layers(config) -> dict[str, tuple[int, int]]:
    """Leaf names of the decoder's linear layers -> (in_features, out_features)."""
    return layout(config).shapes()


def preset_targets(config, preset: str) -> list[str]:
    """The module names that ``attention``, ``mlp`` or ``all`` mean for this architecture."""
    return list(dict.fromkeys(m.leaf for m in layout(config).select(preset)))


def parameter_count(config) -> int:
    """Parameters of the model (tied embeddings counted once)."""
    return layout(config).params


def max_positions(config) -> int | None:
    """The longest sequence the model's position embeddings cover (None if unbounded)."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
