import math

import pytest
import torch

from lfl_ray.analysis.intruders import IntruderSettings, find_intruders, mitigate
from lfl_ray.errors import ConfigError


def base_matrix(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(n, n, generator=generator))[0]
    v = torch.linalg.qr(torch.randn(n, n, generator=generator))[0]
    return u, v, u @ torch.diag(torch.linspace(10, 1, n)) @ v.T


def rotated_away(basis, signs):
    """A unit vector at equal angle to every basis vector: |cos| = 1/sqrt(n) with each."""
    return basis @ torch.as_tensor(signs, dtype=torch.float32) / math.sqrt(basis.shape[0])


def test_planted_intruders_are_found():
    u, v, w = base_matrix()
    n = w.shape[0]
    x, y = rotated_away(u, [1.0] * n), rotated_away(v, [1.0] * n)
    one = find_intruders(w, w + 20 * torch.outer(x, y))
    assert one.indices == (0,) and one.max_cos[0] < 0.2
    z = rotated_away(u, [(-1.0) ** i for i in range(n)])
    t = rotated_away(v, [(-1.0) ** (i // 2) for i in range(n)])
    two = find_intruders(w, w + 30 * torch.outer(x, y) + 25 * torch.outer(z, t))
    assert two.indices == (0, 1) and two.count == 2


def test_small_perturbation_has_no_intruders():
    _, _, w = base_matrix(seed=1)
    generator = torch.Generator().manual_seed(2)
    result = find_intruders(w, w + 1e-3 * torch.randn(w.shape, generator=generator))
    assert result.count == 0 and min(result.max_cos) > 0.99
    assert len(result.max_cos) == 10


def test_settings_change_what_counts():
    u, v, w = base_matrix(seed=3)
    n = w.shape[0]
    tuned = w + 20 * torch.outer(rotated_away(u, [1.0] * n), rotated_away(v, [1.0] * n))
    assert find_intruders(w, tuned, IntruderSettings(epsilon=0.05)).count == 0
    assert find_intruders(w, tuned, IntruderSettings(top_k=3, epsilon=0.999)).count == 3
    for bad in (IntruderSettings(top_k=0), IntruderSettings(epsilon=1.5),
                IntruderSettings(mitigation_lambda=-1)):
        with pytest.raises(ConfigError):
            bad.validate()


def delta_norm(model):
    """Evaluator: total Frobenius norm of the active adapter's weight change."""
    from peft.tuners.lora import LoraLayer

    total = 0.0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLayer) and hasattr(module, "get_base_layer"):
                total += float(module.get_delta_weight(module.active_adapters[0]).norm())
    return {"delta_norm": total}


def test_peft_mitigation_shrinks_the_adapter(tmp_path):
    from synthetic_sweep import make_full_checkpoint, make_lora_checkpoint

    adapter = make_lora_checkpoint(tmp_path / "lora", rank=4)
    result = mitigate("tiny-llama", adapter, trial_id="t", evaluator=delta_norm,
                      settings=IntruderSettings(mitigation_lambda=0.5))
    assert result.intruders_before > 0
    assert result.after["delta_norm"] < result.before["delta_norm"]
    with pytest.raises(ConfigError):
        mitigate("tiny-llama", make_full_checkpoint(tmp_path / "full"))
