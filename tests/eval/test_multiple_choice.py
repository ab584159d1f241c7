"""Multiple-choice scoring: batched scorer == brute force; lm-eval's acc_norm, SEs, BOS rule and task formats."""

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


def test_acc_norm_divides_by_characters_of_the_bare_choice():
    # lm-eval's completion_len is len(choice): "ééé" is 3 characters (6 bytes), "abcd" 4;
    # the continuations' leading space is not counted.
    item = MCItem("x", ("Q:", "Q:"), (" ééé", " abcd"), gold=0, group="x", choices=("ééé", "abcd"))
    lls = [np.array([-3.3, -4.0])]
    # per character: -1.10 vs -1.00 -> choice 1; per byte of " "+choice: -0.47 vs -0.80 -> 0
    result = score_items("t", [item], lls)
    assert result.metrics["t_acc_norm"] == 0.0
    assert result.metrics["t_acc"] == 1.0
    assert result.items["t_margin"] == [pytest.approx(-3.3 / 3 + 1.0)]
    # Without explicit choices, the bare choice is the continuation minus its leading space.
    bare = MCItem("x", ("Q:", "Q:"), (" ééé", " abcd"), gold=0, group="x")
    assert score_items("t", [bare], lls).metrics["t_acc_norm"] == 0.0


def test_plain_stderr_under_lm_evals_name_and_the_clustered_se_apart():
    items = [MCItem(str(i), ("c",) * 2, (" a", " b"), gold=0, group=str(i // 2)) for i in range(6)]
    lls = [np.array([-1.0, -2.0] if i % 2 else [-2.0, -1.0]) for i in range(6)]
    result = score_items("t", items, lls, headline="acc")
    plain = np.std([0, 1] * 3, ddof=1) / np.sqrt(6)
    assert result.metrics["t_acc_stderr"] == pytest.approx(plain)
    assert result.metrics["t_acc_se"] == result.metrics["t_acc_stderr"]
    # each document holds one right and one wrong answer: no spread between documents
    assert result.metrics["t_acc_clustered_se"] == pytest.approx(0.0)


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
    assert all(i.continuations == tuple(" " + c for c in i.choices) for i in items)


def test_arc_without_its_test_requests_fails_instead_of_scoring_validation(monkeypatch):
    from lfl_ray.errors import AssetMissingError

    def missing(task, variant):
        raise FileNotFoundError(f"no {task}/{variant}")

    monkeypatch.setattr(arc, "request_docs", missing)
    with pytest.raises(AssetMissingError, match="test split"):
        arc.load_items()


def test_each_suite_draws_its_own_subset():
    from lfl_ray.eval.spec import EvalSpec
    from lfl_ray.eval.items import subset_indices

    spec = EvalSpec(limits={s: 120 for s in ("arc_challenge", "winogrande", "general_loss",
                                             "drift")})
    arc_rows, wino = subset_indices("arc_challenge", spec, 1172), subset_indices("winogrande", spec, 1267)
    assert arc_rows == sorted(arc_rows) and len(arc_rows) == 120
    assert len(set(arc_rows) & set(wino)) < 30  # by chance about 11; one seed string gave 109
    assert subset_indices("drift", spec, 500) == subset_indices("general_loss", spec, 500)


def test_encode_pair_moves_trailing_space_to_the_continuation(tiny_tokenizer):
    ctx, cont = encode_pair(tiny_tokenizer, "Answer: ", "Paris")
    assert tiny_tokenizer.decode(ctx) == "Answer:"
    assert tiny_tokenizer.decode(cont) == " Paris"


def test_encode_pair_follows_the_tokenizers_bos_default(tmp_path):
    from parity_models import llama_style_tokenizer

    tok = llama_style_tokenizer(tmp_path / "tok")
    bos = tok.bos_token_id
    ctx, cont = encode_pair(tok, "Question: why?\nAnswer:", " Because.")
    assert ctx[0] == bos and bos not in cont
    assert tok.decode(cont).strip() == "Because."
    ctx_off, _ = encode_pair(tok, "Question: why?\nAnswer:", " Because.", add_bos_token=False)
    assert ctx_off == ctx[1:]
    # text that already starts with the BOS token gets no second one
    ctx_chat, _ = encode_pair(tok, "<s>Question: why?\nAnswer:", " Because.")
    assert ctx_chat.count(bos) == 1
    # an empty context is the BOS token
    assert encode_pair(tok, "", " Because.")[0] == [bos]


def test_smollm2_tokenizer_adds_no_bos(tiny_tokenizer):
    ctx, _ = encode_pair(tiny_tokenizer, "Answer:", " Paris")
    assert ctx == tiny_tokenizer("Answer:", add_special_tokens=False)["input_ids"]
