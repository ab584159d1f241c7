"""Block losses agree with the model's own loss; the top-k KL bounds the exact KL."""

from __future__ import annotations

import pytest
import torch

from eval_blocks import random_blocks
from lfl_ray.eval.loss import block_drift, block_losses, drift_reference


def test_block_losses_equal_the_models_loss(tiny_model):
    blocks = random_blocks(3, 24, seed=0, docs=3)
    got = block_losses(tiny_model, blocks, batch_size=2, desc="")
    for i in range(3):
        with torch.no_grad():
            want = tiny_model(input_ids=blocks.input_ids[i:i + 1],
                              labels=blocks.labels[i:i + 1]).loss
        assert got[i] == pytest.approx(float(want), rel=1e-5)


def _exact_kl(p_model, q_model, blocks):
    out = []
    with torch.no_grad():
        for i in range(len(blocks)):
            ids = blocks.input_ids[i:i + 1]
            keep = blocks.labels[i, 1:] != -100
            lp = p_model(input_ids=ids).logits[0, :-1].log_softmax(-1)[keep]
            lq = q_model(input_ids=ids).logits[0, :-1].log_softmax(-1)[keep]
            out.append(float((lp.exp() * (lp - lq)).sum(-1).mean()))
    return out


def test_topk_kl_is_a_lower_bound_exact_at_full_vocabulary(tiny_model):
    from lfl_ray.models import load_model

    tuned = load_model("tiny-llama", seed=1)  # another random model: a large drift
    blocks = random_blocks(2, 16, seed=3, docs=2)
    exact = _exact_kl(tiny_model, tuned, blocks)
    small = block_drift(tuned, blocks, drift_reference(tiny_model, blocks, k=8, desc=""), desc="")
    full = block_drift(tuned, blocks, drift_reference(tiny_model, blocks, k=49152, desc=""),
                       desc="")
    for s, f, e in zip(small, full, exact):
        assert 0 < s <= e + 1e-6
        assert f == pytest.approx(e, rel=1e-3)
    same = block_drift(tiny_model, blocks, drift_reference(tiny_model, blocks, k=8, desc=""), desc="")
    assert same == [0.0, 0.0]
