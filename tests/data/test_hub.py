"""The hub path, run on local directories in the hub datasets' formats (no network)."""

import json

import pytest
import torch

from lfl_ray.data import IGNORE_INDEX, DataSpec, load_regime
from lfl_ray.errors import AssetMissingError, ConfigError

SMALL = dict(max_train_blocks=6, heldout_blocks=4, seq_len=128)


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_magicoder_format_json_files(tmp_path, tokenizer):
    rows = [{"instruction": f"Write function number {i}.", "response": f"def f{i}():\n    return {i}"}
            for i in range(40)]
    _jsonl(tmp_path / "train.jsonl", rows)
    data = load_regime(DataSpec("code_ift", source="hub", hub_dataset=str(tmp_path), **SMALL),
                       log=lambda *_: None)
    assert data.stats["records"] == 40 and data.stats["source"] == "hub"
    assert all(d.startswith("magicoder/") for d in data.train.doc_ids + data.heldout.doc_ids)
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)
    row = data.heldout
    loss = tokenizer.decode(row.input_ids[0][row.labels[0] != IGNORE_INDEX])
    assert loss.startswith("def f") and loss.endswith("<|im_end|>")


def test_metamathqa_format_saved_to_disk_groups_rewrites(tmp_path):
    import datasets

    rows = [{"query": f"Rewrite {k} of question {q}?", "response": f"The answer is {q}.",
             "original_question": f"question {q}", "type": "GSM_Rephrased"}
            for q in range(12) for k in range(3)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "mmqa"))
    data = load_regime(DataSpec("math_ift", source="hub", hub_dataset=str(tmp_path / "mmqa"),
                                pack=False, **SMALL), log=lambda *_: None)
    # the three rewrites of one original question share a document: never on both sides
    assert len(set(data.train.doc_ids) | set(data.heldout.doc_ids)) <= 12
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)
    assert data.stats["heldout"]["documents"] == 2  # heldout_doc_cap 2 rows each


def test_starcoder_format_streamed_with_data_dir(tmp_path):
    code = "def f(x):\n    return x * 2\n\n" * 40
    _jsonl(tmp_path / "python" / "train-0.jsonl",
           [{"content": code.replace("f(", f"f{i}("), "max_stars_repo_name": f"org/repo{i % 5}",
             "max_stars_repo_path": f"m{i}.py"} for i in range(20)])
    data = load_regime(DataSpec("code_cpt", source="hub", hub_dataset=str(tmp_path), **SMALL),
                       log=lambda *_: None)
    assert data.train.input_ids.shape == (6, 128) and data.train.attention_mask.all()
    assert torch.equal(data.train.labels, data.train.input_ids)
    repos = {d for d in data.train.doc_ids + data.heldout.doc_ids}
    assert len(repos) <= 5  # split unit = repository
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)


def test_missing_columns_are_a_config_error(tmp_path):
    _jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": "a"}] * 5)
    with pytest.raises(ConfigError) as info:
        load_regime(DataSpec("code_ift", source="hub", hub_dataset=str(tmp_path), **SMALL),
                    log=lambda *_: None)
    assert info.value.field == "hub_dataset" and "instruction" in str(info.value)


def test_unreachable_hub_names_the_dataset_and_offline(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # offline mode (read at import time, hence the attributes too): fails at once instead of
    # waiting for network timeouts, through the same load_dataset call
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(AssetMissingError) as info:
        load_regime(DataSpec("code_cpt", source="hub", **SMALL), log=lambda *_: None)
    message = str(info.value)
    assert "bigcode/starcoderdata" in message and "source='offline'" in message
    assert "HF_TOKEN" in message  # gated: says a token is needed
