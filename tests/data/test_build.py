"""load_regime on the real offline sources, at small caps."""

import time
from collections import Counter
from dataclasses import replace

import pytest
import torch

from lfl_ray.data import IGNORE_INDEX, DataSpec, general_text, load_regime
from lfl_ray.data.build import build_regime, cache_folder
from lfl_ray.errors import AssetMissingError, ConfigError

SMALL = dict(max_train_blocks=24, heldout_blocks=16, seq_len=256)  # as in conftest.py


@pytest.mark.parametrize("regime", ["code_cpt", "math_cpt"])
def test_cpt_blocks_are_exact_full_blocks(built, regime, tokenizer):
    data = built(regime)
    assert data.train.input_ids.shape == (SMALL["max_train_blocks"], SMALL["seq_len"])
    assert data.train.attention_mask.all()
    assert torch.equal(data.train.labels, data.train.input_ids)  # loss on every token
    assert (data.train.input_ids == tokenizer.eos_token_id).any()  # documents joined with EOS
    assert data.stats["train"]["tokens"] == SMALL["max_train_blocks"] * SMALL["seq_len"]


@pytest.mark.parametrize("regime", ["code_ift", "math_ift"])
def test_ift_masks(built, regime, tokenizer):
    data = built(regime)
    blocks = data.train
    assert len(blocks) == SMALL["max_train_blocks"] and blocks.seq_len == SMALL["seq_len"]
    on = blocks.labels != IGNORE_INDEX
    assert not (on & (blocks.attention_mask == 0)).any()  # no loss on padding
    assert torch.equal(blocks.labels[on], blocks.input_ids[on])
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    for row in range(len(blocks)):
        ids, mask = blocks.input_ids[row], on[row]
        # every <|im_start|> (system, user, assistant headers) and everything up to the
        # assistant's first response token is prompt: no loss
        assert not mask[ids == start].any()
        text = tokenizer.decode(ids[mask])
        assert "<|im_start|>" not in text and "You are a helpful AI assistant" not in text
        # each example's response: loss from right after "<|im_start|>assistant\n" to its <|im_end|>
        heads = (ids == start).nonzero().flatten().tolist()
        for h in heads:
            if tokenizer.decode(ids[h:h + 3]).startswith("<|im_start|>assistant\n"):
                first = h + 3
                end = first
                while end < len(ids) and mask[end]:
                    end += 1
                assert end > first
                # the response ends at its closing <|im_end|> (or at the row's end when truncated)
                assert ids[end - 1] == tokenizer.eos_token_id or end == len(ids)


def test_heldout_is_disjoint_by_document_and_spread(built):
    for regime in ("code_ift", "math_ift", "code_cpt", "math_cpt", "general"):
        data = built(regime)
        held = Counter(data.heldout.doc_ids)
        assert len(data.heldout) == SMALL["heldout_blocks"], regime
        assert max(held.values()) <= 2, regime  # heldout_doc_cap
        assert not set(held) & set(data.train.doc_ids), regime
    assert data.stats["heldout"]["sources"] == {"boolq": 8, "lambada": 8}  # general: round-robin


def test_code_heldout_spans_many_files_and_never_reaches_train(built):
    data = built("code_cpt", heldout_blocks=32)
    assert data.stats["heldout"]["documents"] >= 10
    # no held-out window appears anywhere in the training stream (16-token probe)
    train = ",".join(map(str, data.train.input_ids.flatten().tolist()))
    for row in data.heldout.input_ids:
        probe = ",".join(map(str, row[100:116].tolist()))
        assert probe not in train


def test_builds_are_deterministic_and_seeded():
    spec = DataSpec("math_ift", **SMALL)
    a, b = build_regime(spec, log=lambda *_: None), build_regime(spec, log=lambda *_: None)
    for split in ("train", "heldout"):
        assert torch.equal(getattr(a, split).input_ids, getattr(b, split).input_ids)
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels)
        assert getattr(a, split).doc_ids == getattr(b, split).doc_ids
    c = build_regime(replace(spec, seed=1), log=lambda *_: None)
    assert c.heldout.doc_ids != a.heldout.doc_ids


def test_heldout_does_not_depend_on_the_train_cap(built):
    small, larger = built("code_cpt"), built("code_cpt", max_train_blocks=48)
    assert torch.equal(small.heldout.input_ids, larger.heldout.input_ids)
    assert len(larger.train) == 48


def test_cache_is_used_and_fast(built):
    first = built("general")
    spec = DataSpec("general", **SMALL)
    assert (cache_folder(spec) / "stats.json").exists()
    started = time.perf_counter()
    again = load_regime(spec, log=lambda *_: None)
    assert time.perf_counter() - started < 1.0
    assert torch.equal(again.train.input_ids, first.train.input_ids)
    assert again.stats == first.stats


def test_general_text_is_heldout_general_passages(built):
    rows = general_text(DataSpec("code_cpt", **SMALL), rows=10)
    assert len(rows) == 10 and rows.seq_len == SMALL["seq_len"]
    assert all(d.startswith(("lambada/", "boolq/")) for d in rows.doc_ids)
    assert torch.equal(rows.input_ids, general_text(DataSpec("math_ift", **SMALL), rows=10).input_ids)


def test_unpacked_ift_has_one_example_per_row(built):
    data = built("math_ift", pack=False)
    assert data.stats["train"]["examples"] == len(data.train)
    assert data.stats["packed"] is False


def test_stats_report_tokens_per_split(built):
    stats = built("code_ift").stats
    for split in ("train", "heldout"):
        assert stats[split]["tokens"] > stats[split]["loss_tokens"] > 0
        assert stats[split]["documents"] > 1
    assert stats["sample"]["loss_text"].strip().endswith("<|im_end|>") or stats["length_rule"]


def test_math_cpt_without_docs_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LFL_RAY_MATH_DOCS_ROOT", str(tmp_path))
    notes = []
    data = load_regime(DataSpec("math_cpt", **SMALL), log=notes.append)
    assert data.stats["math_docs_absent"] is True and data.stats["math_docs"] == []
    assert any("math docs absent" in n for n in data.stats["notes"])
    assert any("math docs absent" in n for n in notes)
    assert set(data.stats["train"]["sources"]) == {"math"}


def test_seq_len_too_small_for_any_example():
    with pytest.raises(ConfigError) as info:
        load_regime(DataSpec("math_ift", seq_len=16, max_train_blocks=4), log=lambda *_: None)
    assert info.value.field == "seq_len" and "too small" in str(info.value)


def test_missing_assets_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("LFL_RAY_CACHE", str(tmp_path))
    with pytest.raises(AssetMissingError) as info:
        load_regime(DataSpec("general", **SMALL, seed=99), log=lambda *_: None)  # not cached
    assert "lfl-ray assets fetch" in str(info.value)
