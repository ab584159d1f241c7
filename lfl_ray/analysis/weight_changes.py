"""One pass over the sweep's checkpoints: per matrix, the spectrum of dW and the intruders.

Each matrix pair is decomposed once (SVD of W_base and W_tuned, singular values of dW, in
float32, on the GPU when there is one), and both analyses read those decompositions. Every
trial of a sweep shares its base model, so W_base's SVD is computed once per matrix and
reused (``BaseSVDs``): a third of the SVD work for each checkpoint after the first. On CPU,
several matrices are decomposed at once, one per core (``matrices_in_parallel``). Trials
without a checkpoint folder on this machine are listed as skipped, with the reason.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Iterable, Sequence

import torch

from lfl_ray.analysis.intruders import IntruderSettings, MatrixIntruders, find_intruders
from lfl_ray.analysis.runs import Sweep, Trial, config_labels
from lfl_ray.analysis.spectrum import MatrixSpectrum, kind_summary, matrix_spectrum, ratio_text
from lfl_ray.analysis.weights import open_pairs
from lfl_ray.mlflow_schema import Param, Tag
from lfl_ray.progress import progress


@dataclass(frozen=True)
class TrialWeights:
    """Spectra and intruders of every matrix one trial changed."""

    trial: Trial
    label: str
    spectra: tuple[MatrixSpectrum, ...]
    intruders: tuple[MatrixIntruders, ...]

    @property
    def intruder_count(self) -> int:
        return sum(m.count for m in self.intruders)

    @property
    def method(self) -> str:
        return f"lora r={self.trial.rank}" if self.trial.is_lora else "full"


class BaseSVDs:
    """W_base's left singular vectors and singular values per matrix name, reused across
    the trials that share a base model. Each entry keeps a fingerprint of the matrix it
    came from, so a different base under the same name is decomposed afresh."""

    def __init__(self):
        self._entries: dict[str, tuple[tuple, torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def _fingerprint(base: torch.Tensor) -> tuple:
        flat = base.detach().flatten()
        step = max(1, flat.numel() // 997)
        return (tuple(base.shape), str(base.device), float(flat.double().abs().sum()),
                tuple(float(x) for x in flat[::step][:997].cpu()))

    def get(self, name: str, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mark = self._fingerprint(base)
        entry = self._entries.get(name)
        if entry is None or entry[0] != mark:
            u, s, _ = torch.linalg.svd(base, full_matrices=False)
            entry = self._entries[name] = (mark, u, s)
        return entry[1], entry[2]

    def __len__(self) -> int:
        return len(self._entries)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def analyse_trial(trial: Trial, label: str = "", *, settings: IntruderSettings = IntruderSettings(),
                  fraction: float = 0.9, device: str | None = None,
                  base_model: torch.nn.Module | None = None,
                  base_svds: BaseSVDs | None = None) -> TrialWeights:
    """Spectra and intruders of one trial's checkpoint against its base model."""
    settings.validate()
    base_svds = base_svds if base_svds is not None else BaseSVDs()
    device = device or default_device()
    total, pairs = open_pairs(trial.params.get(Param.MODEL, ""), trial.checkpoint, device, base_model)

    def decompose(pair) -> tuple[MatrixSpectrum, MatrixIntruders]:
        with torch.no_grad():  # grad mode is per thread
            u_base, s_base = base_svds.get(pair.name, pair.base)
            u_tuned, s_tuned, _ = torch.linalg.svd(pair.tuned, full_matrices=False)
            return (matrix_spectrum(pair.name, pair.kind, pair.layer, pair.base, pair.tuned, fraction,
                                    base_s=s_base, tuned_s=s_tuned),
                    find_intruders(pair.base, pair.tuned, settings, u_base=u_base, u_tuned=u_tuned,
                                   name=pair.name, kind=pair.kind, layer=pair.layer))

    with matrices_in_parallel(device) as map_pairs:
        done = list(progress(map_pairs(decompose, pairs), total=total, desc=f"SVD {trial.trial_id}",
                             unit="matrix"))
    return TrialWeights(trial, label or trial.trial_id, tuple(s for s, _ in done), tuple(i for _, i in done))


@contextmanager
def matrices_in_parallel(device: str):
    """A ``map(fn, pairs)`` (lazy, in order) that decomposes several matrices at once on CPU:
    one matrix per core, one torch thread each. LAPACK's SVD of a 576 x 1536 matrix gains
    little from a second thread, so on 2 cores two matrices at a time take 0.72x as long
    (SmolLM2's shapes). Pairs are read (and a LoRA layer merged) in this thread, at most two
    per worker ahead, so memory stays a few matrices. On a GPU, one at a time."""
    threads = torch.get_num_threads()
    if device != "cpu" or threads < 2:
        yield map
        return

    def ordered(fn, items):
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="svd") as pool:
            yield ordered
    finally:
        torch.set_num_threads(threads)


def with_checkpoints(trials: Iterable[Trial]) -> tuple[list[Trial], list[tuple[Trial, str]]]:
    """Trials whose checkpoint folder exists here, and the others with the reason."""
    ready, skipped = [], []
    for trial in trials:
        if not trial.checkpoint:
            skipped.append((trial, f"no {Tag.CHECKPOINT} tag"))
        elif not Path(trial.checkpoint).is_dir():
            skipped.append((trial, f"checkpoint folder not on this machine: {trial.checkpoint}"))
        else:
            ready.append(trial)
    return ready, skipped


def analyse_sweep(sweep: Sweep, *, settings: IntruderSettings = IntruderSettings(),
                  fraction: float = 0.9, device: str | None = None,
                  ) -> tuple[list[TrialWeights], list[tuple[Trial, str]]]:
    """Every usable trial with a checkpoint; base models are loaded once per spec."""
    from lfl_ray.models import load_model

    ready, skipped = with_checkpoints(sweep.usable)
    labels = config_labels(sweep.usable)
    bases: dict[str, torch.nn.Module] = {}
    svds: dict[str, BaseSVDs] = {}
    results = []
    for trial in progress(ready, desc="checkpoints", unit="trial", leave=True):
        spec = trial.params.get(Param.MODEL, "")
        if spec not in bases:
            bases[spec], svds[spec] = load_model(spec), BaseSVDs()
        results.append(analyse_trial(trial, f"{labels[trial.trial_id]} [{trial.trial_id}]",
                                     settings=settings, fraction=fraction, device=device,
                                     base_model=bases[spec], base_svds=svds[spec]))
    return results, skipped


SPECTRUM_HEADER = ("trial", "method", "matrix", "mean rank@90%", "max rank@90%", "full rank",
                   "full rank@90% / LoRA r")


def spectrum_rows(results: Sequence[TrialWeights]) -> list[tuple]:
    """Per trial and matrix type: rank needed for 90% of dW's variance."""
    lora_ranks = sorted({r.trial.rank for r in results if r.trial.is_lora and r.trial.rank})
    rows = []
    for result in results:
        for kind, (avg, top, full_rank) in kind_summary(result.spectra).items():
            ratio = "-"
            if not result.trial.is_lora and lora_ranks:
                ratio = ", ".join(f"r={r}: {ratio_text(avg, r)}" for r in lora_ranks)
            rows.append((result.label, result.method, kind, f"{avg:.1f}", top, full_rank, ratio))
    return rows


def layer_rows(results: Sequence[TrialWeights]) -> list[tuple]:
    """Per trial and layer: mean rank@90% over the layer's matrices."""
    rows = []
    for result in results:
        layers = sorted({s.layer for s in result.spectra if s.layer is not None})
        for layer in layers:
            ranks = [s.rank90 for s in result.spectra if s.layer == layer]
            rows.append((result.label, result.method, layer, f"{mean(ranks):.1f}"))
    return rows


INTRUDER_HEADER = ("trial", "method", "matrices", "intruders", "matrices with intruders",
                   "per matrix")


def intruder_rows(results: Sequence[TrialWeights]) -> list[tuple]:
    rows = []
    for result in results:
        n = len(result.intruders)
        hit = sum(1 for m in result.intruders if m.count)
        rows.append((result.label, result.method, n, result.intruder_count, hit,
                     f"{result.intruder_count / n:.2f}" if n else "-"))
    return rows


def intruder_kind_rows(results: Sequence[TrialWeights]) -> list[tuple]:
    """Per method (full, LoRA by rank) and matrix type: mean intruders per matrix."""
    groups: dict[tuple[str, str], list[int]] = {}
    for result in results:
        for m in result.intruders:
            groups.setdefault((result.method, m.kind), []).append(m.count)
    return [(method, kind, len(counts), f"{mean(counts):.2f}")
            for (method, kind), counts in sorted(groups.items())]
