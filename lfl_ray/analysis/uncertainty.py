"""Numbers with standard errors, and when a difference counts as real.

A difference counts as real only when ``|diff| >= 2 SE``; below that the analysis says
"not distinguishable here". SEs come from seeds (``mean_se``), from the evaluator (the
logged ``*_se``), or paired over the same eval items (``configs.paired``, which uses the
evaluator's own ``lfl_ray.eval`` pairing); unpaired SEs are often several times larger than
the differences between methods (see FIELD_NOTES, calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Z = 2.0
"""How many standard errors a difference must reach to count as real."""


@dataclass(frozen=True)
class Estimate:
    """A number with its standard error and how that error was obtained."""

    value: float
    se: float
    """Standard error; nan when nothing says how noisy ``value`` is."""
    how: str = ""
    """``seeds (n=3)``, ``items``, ``paired over 40 items``, ``unpaired``..."""

    def distinguishable(self, z: float = Z) -> bool:
        """True when ``|value| >= z * se`` (and the SE is known)."""
        return math.isfinite(self.se) and math.isfinite(self.value) and abs(self.value) >= z * self.se

    def sign(self, z: float = Z) -> int:
        """+1 / -1 for a real positive / negative value, 0 when within noise."""
        if not self.distinguishable(z):
            return 0
        return 1 if self.value > 0 else -1

    def text(self, digits: int = 3) -> str:
        se = f" ± {self.se:.{digits}f}" if math.isfinite(self.se) else " (SE unknown)"
        return f"{self.value:+.{digits}f}{se}"

    def plain(self, digits: int = 3) -> str:
        se = f" ± {self.se:.{digits}f}" if math.isfinite(self.se) else ""
        return f"{self.value:.{digits}f}{se}"


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (nan SE for fewer than two values)."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if array.size == 0:
        return float("nan"), float("nan")
    if array.size == 1:
        return float(array[0]), float("nan")
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def unpaired_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the SEs added in quadrature."""
    return Estimate(a.value - b.value, math.sqrt(a.se**2 + b.se**2), "unpaired")


class Verdict:
    """How differences that the paper predicts relate to it (``verdict_of``); ``findings`` and
    ``recommend`` word each one their own way."""

    AGREES = "agrees"
    """Every difference goes the paper's way, beyond ``Z`` SE."""
    DISAGREES = "disagrees"
    """None goes its way and at least one goes against it."""
    PARTLY = "partly"
    """Some go its way and others do not."""
    NOISE = "noise"
    """None is beyond ``Z`` SE."""
    UNTESTED = "untested"
    """Nothing was measured."""


def verdict_of(signs: Sequence[int], expected: int = 1) -> str:
    """The ``Verdict`` of several differences from their signs (``Estimate.sign``: +1, -1,
    or 0 within ``Z`` SE), where the paper predicts sign ``expected`` for each."""
    signs = list(signs)
    if not signs:
        return Verdict.UNTESTED
    if all(s == 0 for s in signs):
        return Verdict.NOISE
    if any(s == expected for s in signs):
        return Verdict.AGREES if all(s == expected for s in signs) else Verdict.PARTLY
    return Verdict.DISAGREES
