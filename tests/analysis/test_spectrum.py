import math

import pytest
import torch

from lfl_ray.analysis.spectrum import kind_summary, matrix_spectrum, rank_for_variance, variance_curve
from lfl_ray.errors import ConfigError


def orthogonal(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n, n, generator=generator))[0]


def with_spectrum(values, rows, cols, seed=0):
    """A rows x cols matrix whose singular values are ``values`` (padded with zeros)."""
    s = torch.zeros(min(rows, cols))
    s[: len(values)] = torch.as_tensor(values, dtype=torch.float32)
    u, v = orthogonal(rows, seed)[:, : len(s)], orthogonal(cols, seed + 1)[:, : len(s)]
    return u @ torch.diag(s) @ v.T


@pytest.mark.parametrize("rank", [1, 3, 8, 20])
def test_planted_rank_needs_at_most_that_rank(rank):
    generator = torch.Generator().manual_seed(rank)
    values = torch.rand(rank, generator=generator) + 0.1
    matrix = with_spectrum(values, 64, 48, seed=rank)
    found = rank_for_variance(torch.linalg.svdvals(matrix))
    assert 1 <= found <= rank
    # Exactly: the smallest k whose top-k squared values hold 90%.
    energy = torch.sort(values, descending=True).values.double() ** 2
    expected = int(torch.nonzero(torch.cumsum(energy, 0) / energy.sum() >= 0.9 - 1e-6)[0]) + 1
    assert found == expected


@pytest.mark.parametrize("n", [10, 20, 33, 64, 100])
def test_flat_spectrum_needs_ceil_of_ninety_percent(n):
    matrix = with_spectrum(torch.ones(n), n, n, seed=n)
    assert rank_for_variance(torch.linalg.svdvals(matrix)) == math.ceil(0.9 * n)
    assert rank_for_variance([1.0] * n, 0.5) == math.ceil(0.5 * n)


def test_geometric_spectrum_and_edge_cases():
    # 2^-k singular values: energy 4^-k, so 90% is reached at k = 2 (0.75, 0.9375).
    assert rank_for_variance([1.0, 0.5, 0.25, 0.125, 0.0625]) == 2
    assert rank_for_variance(torch.zeros(5)) == 0
    assert rank_for_variance([3.0, 4.0], 1.0) == 2
    for bad in (0, 1.5, "0.9"):
        with pytest.raises(ConfigError):
            rank_for_variance([1.0], bad)
    curve = variance_curve([2.0, 1.0])
    assert curve[-1] == pytest.approx(1.0) and curve[0] == pytest.approx(0.8)


def test_matrix_spectrum_of_a_low_rank_update():
    base = with_spectrum(torch.linspace(5, 1, 32), 32, 32, seed=3)
    generator = torch.Generator().manual_seed(4)
    delta = torch.randn(32, 4, generator=generator) @ torch.randn(4, 32, generator=generator)
    spectrum = matrix_spectrum("model.layers.0.q_proj", "q_proj", 0, base, base + delta)
    assert spectrum.rank90 <= 4 and spectrum.full_rank == 32
    assert spectrum.base[0] == pytest.approx(5.0, rel=1e-4)
    assert len(spectrum.delta) == 32 and spectrum.delta[4] < 1e-4 * spectrum.delta[0]
    assert kind_summary([spectrum]) == {"q_proj": (spectrum.rank90, spectrum.rank90, 32)}
