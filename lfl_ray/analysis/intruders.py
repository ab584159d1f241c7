"""Intruder dimensions (Shuttleworth et al. 2024): new top singular directions of a tuned
matrix that resemble no singular direction of the base matrix.

Among the top ``top_k`` left singular vectors of W_tuned, a vector is an intruder when its
largest |cosine| with every left singular vector of W_base is below ``epsilon`` (their code
compares left singular vectors; defaults k=10, epsilon=0.5). The mitigation scales intruder
components by lambda; peft 0.21.2 ships it as ``reduce_intruder_dimension``, used here and,
with the sweep's evals, in ``intruder_mitigation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import torch

from lfl_ray.errors import ConfigError, require_positive


@dataclass(frozen=True)
class IntruderSettings:
    """How intruders are detected (and mitigated)."""

    top_k: int = 10
    """How many top singular vectors of the tuned matrix are examined."""
    epsilon: float = 0.5
    """A vector is an intruder when its max |cos| with the base's vectors is below this."""
    mitigation_lambda: float = 0.75
    """peft's ``mitigation_lambda``: the scale left on the intruder components (its code does
    W + (lambda - 1) * intruders: 1 keeps them, 0 removes them; its docstring says otherwise)."""

    def validate(self) -> "IntruderSettings":
        require_positive("intruders.top_k", self.top_k, integer=True)
        if not (isinstance(self.epsilon, (int, float)) and 0 < self.epsilon <= 1):
            raise ConfigError("intruders.epsilon", self.epsilon, "must be a number in (0, 1]")
        if not (isinstance(self.mitigation_lambda, (int, float)) and 0 <= self.mitigation_lambda <= 1):
            raise ConfigError("intruders.mitigation_lambda", self.mitigation_lambda,
                              "must be a number in [0, 1]")
        return self


@dataclass(frozen=True)
class MatrixIntruders:
    """Intruders of one matrix."""

    name: str
    kind: str
    layer: int | None
    indices: tuple[int, ...]
    """Positions (0 = largest singular value) of the intruders among the top k."""
    max_cos: tuple[float, ...]
    """Largest |cosine| with a base vector, for each of the top k tuned vectors."""

    @property
    def count(self) -> int:
        return len(self.indices)


def similarity(u_base: torch.Tensor, u_tuned_top: torch.Tensor) -> torch.Tensor:
    """max_i |cos(y_j, x_i)| for each tuned vector y_j (columns of ``u_tuned_top``)."""
    # Singular vectors have unit norm, so the dot product is the cosine.
    return (u_tuned_top.T @ u_base).abs().max(dim=1).values


def find_intruders(base: torch.Tensor, tuned: torch.Tensor,
                   settings: IntruderSettings = IntruderSettings(), u_base=None, u_tuned=None,
                   name: str = "", kind: str = "", layer: int | None = None) -> MatrixIntruders:
    """Intruders of one matrix pair (pass left singular vectors already computed to skip SVDs)."""
    settings.validate()
    if u_base is None:
        u_base = torch.linalg.svd(base.float(), full_matrices=False).U
    if u_tuned is None:
        u_tuned = torch.linalg.svd(tuned.float(), full_matrices=False).U
    top = u_tuned[:, : settings.top_k]
    cos = similarity(u_base, top)
    indices = tuple(int(i) for i in torch.nonzero(cos < settings.epsilon).flatten())
    return MatrixIntruders(name, kind, layer, indices, tuple(float(c) for c in cos))


@dataclass(frozen=True)
class MitigationResult:
    """peft's intruder mitigation on one LoRA adapter, and its effect."""

    trial_id: str
    settings: IntruderSettings
    intruders_before: int
    intruders_after: int
    before: Mapping[str, float] = field(default_factory=dict)
    """The evaluator's metrics on the adapter as trained (empty without an evaluator)."""
    after: Mapping[str, float] = field(default_factory=dict)
    """The same on the mitigated adapter."""


def _count(peft_model, settings: IntruderSettings) -> int:
    from lfl_ray.analysis.weights import lora_pairs

    return sum(find_intruders(p.base, p.tuned, settings).count
               for p in lora_pairs(peft_model, unload=False))


def mitigate(model_spec: str, checkpoint: str | Path, *, trial_id: str = "",
             settings: IntruderSettings = IntruderSettings(),
             evaluator: Callable[[torch.nn.Module], Mapping[str, float]] | None = None,
             base_model: torch.nn.Module | None = None) -> MitigationResult:
    """Scale a LoRA adapter's intruder components by lambda (peft) and measure the effect.

    ``evaluator(model) -> {"forgetting": ..., ...}`` is called on the adapter as trained and
    on the mitigated one when given.
    """
    from peft import PeftModel
    from peft.tuners.lora.intruders import reduce_intruder_dimension

    from lfl_ray.analysis.weights import checkpoint_kind, model_folder
    from lfl_ray.models import load_model

    settings.validate()
    checkpoint = model_folder(checkpoint)
    if checkpoint_kind(checkpoint) != "lora":
        raise ConfigError("checkpoint", str(checkpoint), "intruder mitigation needs a LoRA adapter "
                          "folder (adapter_config.json)")
    base_model = base_model if base_model is not None else load_model(model_spec)
    model = PeftModel.from_pretrained(base_model, str(checkpoint))
    model.eval()
    before_count = _count(model, settings)
    before = dict(evaluator(model)) if evaluator else {}
    with torch.no_grad():
        reduce_intruder_dimension(model, top_k=settings.top_k,
                                  threshold_epsilon=settings.epsilon,
                                  mitigation_lambda=settings.mitigation_lambda, logging_sink=None)
    after_count = _count(model, settings)
    after = dict(evaluator(model)) if evaluator else {}
    model.unload()
    return MitigationResult(trial_id, settings, before_count, after_count, before, after)
