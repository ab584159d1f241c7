"""Singular-value spectra of weight changes: how many directions a finetune really used.

The paper's measure: the rank needed to explain 90% of the variance of dW = W_tuned - W_base,
variance being the squared singular values. Full FT needs 10-100x a typical LoRA rank there;
a LoRA update of rank r needs at most r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean
from typing import Sequence

import numpy as np
import torch

from lfl_ray.errors import ConfigError

TOLERANCE = 1e-6
"""Cumulative variance within this of the target counts as reaching it (float rounding)."""


def rank_for_variance(singular_values, fraction: float = 0.9) -> int:
    """Smallest k whose top-k singular values hold ``fraction`` of sum(s^2); 0 for a zero matrix."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError("fraction", fraction, "must be a number in (0, 1]")
    s = np.sort(np.abs(np.asarray(torch.as_tensor(singular_values).double().cpu(), dtype=float)))[::-1]
    energy = s**2
    total = energy.sum()
    if total <= 0:
        return 0
    cumulative = np.cumsum(energy) / total
    return int(np.searchsorted(cumulative, fraction - TOLERANCE, side="left") + 1)


def variance_curve(singular_values) -> np.ndarray:
    """Cumulative fraction of variance explained by the top-k singular values, k = 1..n."""
    s = np.sort(np.abs(np.asarray(torch.as_tensor(singular_values).double().cpu())))[::-1]
    energy = s**2
    total = energy.sum()
    return np.cumsum(energy) / total if total > 0 else np.zeros_like(energy)


@dataclass(frozen=True)
class MatrixSpectrum:
    """Spectra of one matrix: its change, and the matrix before and after."""

    name: str
    kind: str
    layer: int | None
    shape: tuple[int, int]
    rank90: int
    """Rank explaining ``fraction`` (default 90%) of dW's variance."""
    delta: np.ndarray
    """Singular values of dW, descending."""
    base: np.ndarray
    """Singular values of W_base."""
    tuned: np.ndarray
    """Singular values of W_tuned."""

    @property
    def full_rank(self) -> int:
        return min(self.shape)


def matrix_spectrum(name: str, kind: str, layer: int | None, base: torch.Tensor,
                    tuned: torch.Tensor, fraction: float = 0.9, base_s=None,
                    tuned_s=None) -> MatrixSpectrum:
    """Spectra of one matrix pair (pass singular values already computed to skip an SVD)."""
    delta_s = torch.linalg.svdvals(tuned - base)
    base_s = torch.linalg.svdvals(base) if base_s is None else base_s
    tuned_s = torch.linalg.svdvals(tuned) if tuned_s is None else tuned_s
    as_np = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    return MatrixSpectrum(name, kind, layer, tuple(base.shape), rank_for_variance(delta_s, fraction),
                          as_np(delta_s), as_np(base_s), as_np(tuned_s))


def by_kind(spectra: Sequence[MatrixSpectrum]) -> dict[str, list[MatrixSpectrum]]:
    groups: dict[str, list[MatrixSpectrum]] = {}
    for s in spectra:
        groups.setdefault(s.kind, []).append(s)
    return groups


def kind_summary(spectra: Sequence[MatrixSpectrum]) -> dict[str, tuple[float, int, int]]:
    """Per matrix type: mean rank@90% over layers, its max, and the matrices' full rank."""
    return {kind: (mean(s.rank90 for s in group), max(s.rank90 for s in group), group[0].full_rank)
            for kind, group in sorted(by_kind(spectra).items())}


def ratio_text(full_rank90: float, lora_rank: int | None) -> str:
    if not lora_rank or not math.isfinite(full_rank90):
        return "-"
    return f"{full_rank90 / lora_rank:.2g}x"
