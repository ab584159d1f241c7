"""Multiple-choice scoring: batched scorer == brute force; byte-length acc_norm; task formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfl_ray.eval import arc, hellaswag, winogrande
from lfl_ray.eval.backend import HFBackend, encode_pair
from lfl_ray.eval.multiple_choice import MCItem, choice_scores, score_items


def brute_force(model, tokenizer, context: str, continuation: str) -> float:
    """Sum of log p(continuation tokens | context), one unpadded sequence at a time."""
    ctx, cont = encode_pair(tokenizer, context, continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].log_softmax(-1)
    return sum(float(logp[len(ctx) + j - 1, t]) for j, t in enumerate(cont))


def test_batched_scorer_matches_brute_force(tiny_model, tiny_tokenizer):
    items = hellaswag.load_items()[:3] + winogrande.load_items()[:2] + arc.load_items()[:2]
    tiny_model.eval()
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=3)  # mixes lengths: padding
    got = choice_scores(backend, items, desc="")
    for item, scores in zip(items, got):
        want = [brute_force(tiny_model, tiny_tokenizer, c, x)
                for c, x in zip(item.contexts, item.continuations)]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-3)
        assert len(set(np.round(scores, 4))) > 1  # the choices really differ


def test_acc_norm_divides_by_bytes_not_characters():
    # " ééé" is 4 characters but 7 bytes; " abcd" is 5 of each.
    item = MCItem("x", ("Q:", "Q:"), (" ééé", " abcd"), gold=0, group="x")
    lls = [np.array([-4.2, -4.0])]
    # per character: -1.05 vs -0.80 -> choice 1; per byte: -0.60 vs -0.80 -> choice 0 (gold)
    result = score_items("t", [item], lls)
    assert result.metrics["t_acc_norm"] == 1.0
    assert result.metrics["t_acc"] == 0.0
    assert result.items["t_margin"] == [pytest.approx(-4.2 / 7 + 0.8)]


def test_margin_is_gold_minus_best_other_and_se_is_reported():
    items = [MCItem(str(i), ("c",) * 3, (" a", " b", " c"), gold=i % 3, group=str(i))
             for i in range(4)]
    lls = [np.array([-1.0, -2.0, -3.0])] * 4
    result = score_items("t", items, lls, headline="acc")
    per_byte = np.array([-1.0, -2.0, -3.0]) / 2
    assert result.items["t_margin"] == [-1.0 + 2.0, -2.0 + 1.0, -3.0 + 1.0, 1.0]
    assert result.metrics["t_acc"] == 0.5 and result.metrics["t_acc_se"] > 0
    assert "t_acc_norm" not in result.metrics and per_byte.size == 3


def test_hellaswag_preprocessing_follows_the_harness():
    # The harness strips before removing tags, so a leading tag leaves its space behind.
    assert hellaswag.preprocess(" [header] How to tie a knot [title] Make a loop. ") == \
        " How to tie a knot. Make a loop."
    assert hellaswag.preprocess("Mix [step] well.") == "Mix well."
    row = {"ctx_a": "A man is on a roof.", "ctx_b": "he", "activity_label": "Roofing",
           "endings": ["falls [step] down.", "waves."], "label": "1", "source_id": "v1"}
    item = hellaswag.to_item(row, 0)
    assert item.contexts[0] == "Roofing: A man is on a roof. He"
    assert item.continuations == (" falls down.", " waves.") and item.gold == 1


def test_winogrande_partial_scoring_shares_the_continuation():
    row = {"sentence": "Sarah was a better surgeon than Maria so _ got the easier cases.",
           "option1": "Sarah", "option2": "Maria", "answer": "2"}
    item = winogrande.to_item(row, 5)
    assert item.contexts == ("Sarah was a better surgeon than Maria so Sarah",
                             "Sarah was a better surgeon than Maria so Maria")
    assert item.continuations == (" got the easier cases.",) * 2 and item.gold == 1


def test_arc_uses_the_1172_question_test_set():
    items = arc.load_items()
    assert len(items) == 1172
    assert all(i.contexts[0].startswith("Question: ") and i.contexts[0].endswith("Answer:")
               for i in items[:20])


def test_encode_pair_moves_trailing_space_to_the_continuation(tiny_tokenizer):
    ctx, cont = encode_pair(tiny_tokenizer, "Answer: ", "Paris")
    assert tiny_tokenizer.decode(ctx) == "Answer:"
    assert tiny_tokenizer.decode(cont) == " Paris"
