"""The weight figures say what they should: a colour per trial, whole labels, integer layers,
and spectra on which full FT and LoRA look different."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lfl_ray.analysis import figures
from lfl_ray.analysis.intruders import MatrixIntruders
from lfl_ray.analysis.spectrum import matrix_spectrum
from lfl_ray.analysis.weight_changes import TrialWeights

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def trial_weights(label: str, rank: int | None, kinds=ATTENTION + MLP, layers=2,
                  intruders: int = 0, seed: int = 0) -> TrialWeights:
    """Spectra of random 32x32 matrices changed by a dense update (``rank=None``: full FT)
    or by a rank-``rank`` one (LoRA)."""
    gen = torch.Generator().manual_seed(seed)
    spectra, found = [], []
    for layer in range(layers):
        for kind in kinds:
            base = torch.randn(32, 32, generator=gen, dtype=torch.float64)
            if rank is None:
                delta = 0.01 * torch.randn(32, 32, generator=gen, dtype=torch.float64)
            else:
                delta = 0.01 * (torch.randn(32, rank, generator=gen, dtype=torch.float64)
                                @ torch.randn(rank, 32, generator=gen, dtype=torch.float64))
            name = f"model.layers.{layer}.{kind}"
            spectra.append(matrix_spectrum(name, kind, layer, base, base + delta))
            first = not found  # the trial's intruders all sit in its first matrix
            found.append(MatrixIntruders(name, kind, layer, tuple(range(intruders)) if first else (), ()))
    trial = SimpleNamespace(is_lora=rank is not None, rank=rank)
    return TrialWeights(trial, label, tuple(spectra), tuple(found))


@pytest.fixture
def drawn(monkeypatch):
    """The figure a figures.* call drew, kept open after it was saved."""
    monkeypatch.setattr(figures.plt, "close", lambda *args, **kwargs: None)
    plt.close("all")
    yield lambda: plt.figure(plt.get_fignums()[-1])
    plt.close("all")


@pytest.fixture
def trials():
    return [trial_weights("full lr=2e-05 [full-a]", None, intruders=3),
            trial_weights("lora-r4-all lr=2e-04 [lora-all]", 4, seed=1),
            trial_weights("lora-r4-attention lr=2e-04 [lora-att]", 4, kinds=ATTENTION, seed=2)]


def test_rank90_by_kind_gives_each_trial_its_own_colour(trials, drawn, tmp_path):
    figures.rank90_by_kind(trials, tmp_path / "kind.png")
    ax = drawn().axes[0]
    bars = {c.get_label(): c for c in ax.containers}
    colours = {label: tuple(c.patches[0].get_facecolor()) for label, c in bars.items()}
    # Both LoRA trials share a method ("lora r=4") yet are told apart.
    assert set(colours) == {t.label for t in trials} and len(set(colours.values())) == 3
    # No zero-height bar where the attention-only trial adapted no MLP matrix.
    assert len(bars["lora-r4-attention lr=2e-04 [lora-att]"].patches) == len(ATTENTION)
    assert (tmp_path / "kind.png").is_file()


def test_colours_stay_distinct_past_the_qualitative_maps():
    for n in (3, 12, 33):
        colours = figures._colors([f"trial {i}" for i in range(n)])
        assert len(set(colours.values())) == n


def test_layer_ticks_are_whole_layers(trials, drawn, tmp_path):
    figures.rank90_by_layer(trials, tmp_path / "layer.png")
    assert list(drawn().axes[0].get_xticks()) == [0, 1]
    plt.close("all")
    figures.rank90_by_layer([trial_weights("full", None, kinds=("q_proj",), layers=40)],
                            tmp_path / "deep.png")
    ticks = drawn().axes[0].get_xticks()
    assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks)


def test_intruder_labels_are_whole_and_inside_the_figure(trials, drawn, tmp_path):
    figures.intruders(trials, tmp_path / "intruders.png")
    fig = drawn()
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = ax.get_yticklabels()
    assert [t.get_text() for t in labels] == [t.label for t in trials]
    canvas = fig.bbox
    for text in labels:
        box = text.get_window_extent()
        assert box.x0 >= canvas.x0 and box.x1 <= canvas.x1 and text.get_rotation() == 0
    # A trial with no intruders still says so (a zero-length bar is invisible).
    assert "0 in 8 matrices" in {t.get_text() for t in ax.texts}


def test_spectra_show_lora_drop_after_its_rank(trials, drawn, tmp_path):
    figures.spectra(trials, tmp_path / "spectra.png")
    left, middle, right = drawn().axes
    curves = {line.get_label(): line.get_ydata() for line in left.get_lines()
              if not line.get_label().startswith("_")}
    full, lora = curves[trials[0].label], curves[trials[1].label]
    # Full FT's dW keeps its scale past index r; LoRA's falls to rounding error there.
    assert full[4] > 0.3 * full[0] and lora[4] < 1e-6 * lora[0]
    # The middle panel shows how W's singular values moved: visibly non-zero.
    assert all(np.abs(line.get_ydata()).max() > 1e-4 for line in middle.get_lines()[:3])
    assert right.get_lines()  # the cumulative variance is still there
