"""Model dropout for full finetuning: attention dropout and hidden (residual) dropout.

The paper compares LoRA against full finetuning plus dropout. Modern decoders ship with
their dropouts at 0 and some have no hidden dropout at all, so this module switches them
on in place, after the model is built:

==========================  =============================  ===================================
architecture (model_type)   attention dropout              hidden dropout
==========================  =============================  ===================================
llama, mistral, qwen2,      native: ``attention_dropout``  forward hooks: element-wise dropout
qwen3                       of each attention module (on   on the output of each decoder
                            the softmax probabilities)     layer's ``self_attn`` and ``mlp``,
                                                           before the residual add
gpt2                        native: ``attn_pdrop``         native: ``resid_pdrop``
                            (``attn.attn_dropout``)        (``attn.resid_dropout``, ``mlp.dropout``)
anything else               ConfigError naming the supported ones (only when a rate is > 0)
==========================  =============================  ===================================

Hidden dropout sits where GPT-2's ``resid_pdrop`` and BERT's ``hidden_dropout_prob`` sit:
on each sublayer's output before it joins the residual stream, not on the residual stream
itself (dropping the stream would zero the sum of every earlier layer, a much harsher
regularizer than the one the paper compares against). Hooks run only in training mode.

Attention modules of the Llama family copy ``config.attention_dropout`` at construction,
so changing the config afterwards does nothing: the rate is set on every attention module
(and on the config, so a saved checkpoint records it).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lfl_ray.errors import ConfigError

HOOKED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
"""Attention dropout native, hidden dropout through forward hooks."""
NATIVE_FAMILIES = ("gpt2",)
"""Both dropouts native."""
SUPPORTED = HOOKED_FAMILIES + NATIVE_FAMILIES


def check_rate(field: str, value) -> float:
    """A dropout rate in [0, 1), or a ConfigError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(field, value, "must be a number in [0, 1)")
    return float(value)


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def model_type(model: torch.nn.Module) -> str:
    return getattr(getattr(base_model(model), "config", None), "model_type", type(model).__name__)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers of a Llama-family model (each has ``self_attn`` and ``mlp``)."""
    layers = getattr(base_model(model).get_decoder(), "layers", None)
    if layers is None or not all(hasattr(l, "self_attn") and hasattr(l, "mlp") for l in layers):
        raise ConfigError("model", model_type(model),
                          f"hidden dropout hooks need Llama-style decoder layers ({list(HOOKED_FAMILIES)})")
    return list(layers)


def _sublayer_dropout_hook(rate: float) -> Callable:
    def hook(module, args, output):
        if not module.training:
            return None
        if isinstance(output, tuple):  # attention returns (output, weights)
            return (F.dropout(output[0], p=rate, training=True), *output[1:])
        return F.dropout(output, p=rate, training=True)

    return hook


def add_hidden_dropout(model: torch.nn.Module, rate: float) -> list:
    """Element-wise dropout on every attention and MLP output of a Llama-family model.

    Returns the hook handles (``handle.remove()`` undoes it); none at rate 0.
    """
    rate = check_rate("hidden_dropout", rate)
    if rate == 0:
        return []
    hook = _sublayer_dropout_hook(rate)
    handles = []
    for layer in decoder_layers(model):
        handles.append(layer.self_attn.register_forward_hook(hook))
        handles.append(layer.mlp.register_forward_hook(hook))
    return handles


def _unsupported(model, attention_dropout: float, hidden_dropout: float) -> ConfigError:
    return ConfigError("model_type", model_type(model),
                       f"model dropout (attention {attention_dropout}, hidden {hidden_dropout}) "
                       f"supports {list(SUPPORTED)}; use rates of 0 for other architectures")


def apply_model_dropout(model: torch.nn.Module, attention_dropout: float,
                        hidden_dropout: float) -> dict:
    """Set attention and hidden dropout on ``model`` in place (see the module table).

    Returns what it set: ``model_type``, ``attention_dropout``, ``attention_dropout_via``,
    ``hidden_dropout``, ``hidden_dropout_via`` (plain values, fit for logging), plus
    ``handles`` (the forward hooks it registered, none at rate 0) and ``undo`` (a function
    that removes the hooks and restores the previous attention rates).
    """
    attention_dropout = check_rate("attention_dropout", attention_dropout)
    hidden_dropout = check_rate("hidden_dropout", hidden_dropout)
    kind = model_type(model)
    config = base_model(model).config
    restore: list[tuple[object, str, float]] = []

    def set_attr(obj, name: str, value: float) -> None:
        restore.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    handles: list = []
    if kind in HOOKED_FAMILIES:
        set_attr(config, "attention_dropout", attention_dropout)
        for layer in decoder_layers(model):
            set_attr(layer.self_attn, "attention_dropout", attention_dropout)
        handles = add_hidden_dropout(model, hidden_dropout)
        via = ("attention modules' attention_dropout (softmax probabilities)",
               "forward hooks on self_attn and mlp outputs" if hidden_dropout else "none")
    elif kind in NATIVE_FAMILIES:
        set_attr(config, "attn_pdrop", attention_dropout)
        set_attr(config, "resid_pdrop", hidden_dropout)
        for block in base_model(model).transformer.h:
            set_attr(block.attn.attn_dropout, "p", attention_dropout)
            set_attr(block.attn.resid_dropout, "p", hidden_dropout)
            set_attr(block.mlp.dropout, "p", hidden_dropout)
        via = ("attn_pdrop (attn.attn_dropout)", "resid_pdrop (attn.resid_dropout, mlp.dropout)")
    elif attention_dropout or hidden_dropout:
        raise _unsupported(model, attention_dropout, hidden_dropout)
    else:
        via = ("none", "none")

    def undo() -> None:
        for handle in handles:
            handle.remove()
        for obj, name, value in reversed(restore):
            setattr(obj, name, value)

    return {"model_type": kind, "attention_dropout": attention_dropout,
            "attention_dropout_via": via[0], "hidden_dropout": hidden_dropout,
            "hidden_dropout_via": via[1], "handles": handles, "undo": undo}
