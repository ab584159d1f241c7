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


def test_right_padded_rows_of_any_length_score_as_if_alone(tiny_model):
    """Batches are sorted by length and cut to their longest row: each row's loss and drift
    equal those of the row scored alone and unpadded, in the rows' own order."""
    from lfl_ray.data.blocks import TokenBlocks
    from lfl_ray.models import load_model

    blocks = random_blocks(5, 24, seed=5, docs=5)
    lengths = [24, 7, 15, 3, 11]
    for i, n in enumerate(lengths):  # right padding, as the passage rows have
        blocks.input_ids[i, n:] = 0
        blocks.labels[i, n:] = -100
        blocks.attention_mask[i, n:] = 0
    alone = [TokenBlocks(blocks.input_ids[i:i + 1, :n], blocks.labels[i:i + 1, :n],
                         blocks.attention_mask[i:i + 1, :n], [f"doc{i}"]) for i, n in enumerate(lengths)]
    got = block_losses(tiny_model, blocks, batch_size=2, desc="")
    want = [block_losses(tiny_model, a, batch_size=1, desc="")[0] for a in alone]
    assert got == pytest.approx(want, rel=1e-5)
    tuned = load_model("tiny-llama", seed=1)
    drift = block_drift(tuned, blocks, drift_reference(tiny_model, blocks, k=8, desc=""), batch_size=2, desc="")
    drift_alone = [block_drift(tuned, a, drift_reference(tiny_model, a, k=8, desc=""), desc="")[0] for a in alone]
    assert drift == pytest.approx(drift_alone, rel=1e-4, abs=1e-7)
