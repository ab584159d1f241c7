"""A study's own data (lfl_ray.data.custom): readers, mappings, chat formatting, the split,
caps, decontamination, the facts for MLflow and `lfl-ray data stats --study`."""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from dataclasses import replace

import pytest
import torch
import yaml

from lfl_ray.cli import main as lfl_ray_main
from lfl_ray.data import IGNORE_INDEX, DataSpec, load_regime
from lfl_ray.data.build import build_regime, cache_folder
from lfl_ray.data.custom import CustomData, read_records
from lfl_ray.data.eval_overlap import decontaminate
from lfl_ray.data.facts import dataset_facts
from lfl_ray.data.formatting import tokenize_examples
from lfl_ray.data.records import Document, Example
from lfl_ray.data.regimes import Regime, register_regime
from lfl_ray.errors import ConfigError
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.sweep.study import load_study

QUIET = dict(log=lambda *_: None)
QA = [{"id": i, "question": f"What is {i} plus {i}? Say it in words.", "answer": f"{i} plus {i} makes {2 * i}."}
      for i in range(40)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _spec(custom: CustomData, **kw) -> DataSpec:
    base = dict(regime="custom", custom=custom, model="tiny-llama", seq_len=128, heldout_blocks=6,
                max_train_blocks=20, heldout_doc_cap=custom.heldout_doc_cap)
    return DataSpec(**{**base, **kw}).validate()


def test_instruction_jsonl_detected_fields_loss_on_response_only(tmp_path, tokenizer):
    path = _write_jsonl(tmp_path / "qa.jsonl", QA)
    data = build_regime(_spec(CustomData("instructions", path=str(path)), pack=False), **QUIET)
    assert data.stats["data"]["fields"] == [{"prompt_field": "question", "response_field": "answer",
                                              "detected": True}]
    answers = {f"qa/{i + 1}": r["answer"] for i, r in enumerate(QA)}  # doc id = file stem / row number
    for blocks in (data.train, data.heldout):
        for row in range(len(blocks)):
            on = blocks.labels[row] != IGNORE_INDEX
            text = tokenizer.decode(blocks.input_ids[row][on])
            assert text == answers[blocks.doc_ids[row]] + "<|im_end|>"
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)
    assert len(data.heldout) == 6 and data.stats["heldout"]["documents"] == 6


def test_chat_messages_prompt_is_every_earlier_turn(tmp_path, tokenizer):
    chats = [{"messages": [{"role": "system", "content": "You are terse."},
                           {"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Hello."},
                           {"from": "human", "value": f"Double {i}?"}, {"from": "gpt", "value": f"{2 * i}"}]}
             for i in range(10)]
    path = _write_jsonl(tmp_path / "chat.jsonl", chats)
    records, _facts = read_records(CustomData("instructions", path=str(path)), seed=0, cache_dir=tmp_path, **QUIET)
    ex = records[3]
    assert ex.instruction == "Double 3?" and ex.response == "6"
    assert ex.context == (("system", "You are terse."), ("user", "Hi 3"), ("assistant", "Hello."))
    (row,) = tokenize_examples([ex], tokenizer, 256, Counter())
    loss = tokenizer.decode([i for i, lab in zip(row.ids, row.labels) if lab != IGNORE_INDEX])
    assert loss == "6<|im_end|>"
    full = tokenizer.decode(row.ids)
    assert "You are terse." in full and "Hello." in full and "Double 3?" in full


def test_a_model_without_chat_template_gets_the_plain_format(tokenizer):
    plain = copy.copy(tokenizer)
    plain.chat_template = None
    (row,) = tokenize_examples([Example("t/1", "t", "Add 2 and 3.", "5")], plain, 64, Counter())
    loss = plain.decode([i for i, lab in zip(row.ids, row.labels) if lab != IGNORE_INDEX])
    assert loss == "5" + plain.eos_token
    assert plain.decode(row.ids).startswith("Add 2 and 3.\n\n")


def test_table_formats_read_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = QA[:5]
    (tmp_path / "a.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "a.csv").write_text("id,question,answer\n" + "".join(
        f'{r["id"]},"{r["question"]}","{r["answer"]}"\n' for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    _write_jsonl(tmp_path / "a.jsonl", rows)
    texts = []
    for suffix in ("json", "csv", "parquet", "jsonl"):
        records, _ = read_records(CustomData("instructions", path=str(tmp_path / f"a.{suffix}")), seed=0,
                                  cache_dir=tmp_path, **QUIET)
        texts.append([(r.doc_id, r.instruction, r.response) for r in records])
    assert all(t == texts[0] for t in texts) and len(texts[0]) == 5


def test_text_folder_one_document_per_file_skips_empty_binary_and_huge(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "pkg").mkdir(parents=True)
    for i in range(6):
        (corpus / "pkg" / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 30)
    (corpus / "pkg" / "__init__.py").write_text("")
    (corpus / "blob.txt").write_bytes(b"\xff\xfe\x00binary")
    (corpus / "huge.md").write_text("word " * 1000)
    (corpus / ".git").mkdir()
    (corpus / ".git" / "HEAD.txt").write_text("ref: refs/heads/main")
    custom = CustomData("text", path=str(corpus), max_file_bytes=4000)
    records, facts = read_records(custom, seed=0, cache_dir=tmp_path, **QUIET)
    assert sorted(r.doc_id for r in records) == [f"corpus/pkg/m{i}.py" for i in range(6)]
    assert facts["data"]["skipped_files"] == {"empty": 1, "not UTF-8 text": 1, "larger than max_file_bytes (4000)": 1}
    data = build_regime(_spec(custom, heldout_blocks=4), **QUIET)
    assert torch.equal(data.train.labels, data.train.input_ids)  # CPT: loss on every token
    held = Counter(data.heldout.doc_ids)
    assert max(held.values()) <= custom.heldout_doc_cap  # the per-document cap
    assert not set(held) & {d for d in data.train.doc_ids}


def test_document_field_keeps_a_group_on_one_side(tmp_path):
    rows = [dict(r, topic=f"t{r['id'] % 5}") for r in QA]
    path = _write_jsonl(tmp_path / "qa.jsonl", rows)
    data = build_regime(_spec(CustomData("instructions", path=str(path), document_field="topic"), pack=False),
                        **QUIET)
    assert len(set(data.heldout.doc_ids)) <= 2  # at most half of the 5 topics held out
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)


def test_caps_skip_empty_and_the_seq_len_warning(tmp_path):
    rows = [dict(r, answer="" if r["id"] % 10 == 0 else r["answer"]) for r in QA]
    rows[5]["answer"] = "many words " * 200  # longer than seq_len: cut
    path = _write_jsonl(tmp_path / "qa.jsonl", rows)
    logged = []
    custom = CustomData("instructions", path=str(path), skip_empty=True, max_rows=30)
    data = build_regime(_spec(custom, max_train_blocks=None, heldout_blocks=4, pack=False), log=logged.append)
    assert data.stats["data"]["read"] == 36 and data.stats["data"]["kept"] == 30
    assert data.stats["data"]["skipped_empty_rows"] == 4
    logged.clear()
    data = build_regime(_spec(replace(custom, max_rows=None), max_train_blocks=None, heldout_blocks=4, pack=False),
                        log=logged.append)
    warning = [line for line in logged if "longer than seq_len 128 and cut" in line]
    assert warning and ", 1 were longer" in warning[0] and any("1 were longer" in n for n in data.stats["notes"])


def test_decontamination_drops_records_copying_an_eval_item(tmp_path):
    from lfl_ray.data import offline

    passage = max((d.text for d in offline.lambada_documents()[:50]), key=len)
    clean = Example("x/1", "x", "Write a haiku about rain.", "Soft rain on the roof.")
    copied = Document("x/2", "x", "Intro words. " + passage[:400])
    kept, facts = decontaminate([clean, copied], ["heldout_loss", "general_loss", "lm_eval:piqa"], **QUIET)
    assert kept == [clean]
    assert facts["dropped"] == 1 and facts["by_suite"] == {"general_loss": 1} and facts["examples"] == ["x/2"]
    assert facts["not_checked"] == ["lm_eval:piqa"]


def test_dataset_facts_for_mlflow(tmp_path):
    path = _write_jsonl(tmp_path / "qa.jsonl", QA)
    spec = _spec(CustomData("instructions", path=str(path), name="arith"))
    data = load_regime(spec, **QUIET)
    facts = dataset_facts(spec, data)
    assert set(facts) == {"train", "heldout"}
    held = facts["heldout"]
    assert held["name"] == "arith-heldout" and held["source"] == str(path.resolve())
    assert held["rows"] == len(data.heldout) and held["tokens"] == int(data.heldout.attention_mask.sum())
    assert len(held["digest"]) == 16 and held["digest"] != facts["train"]["digest"]
    assert dataset_facts(spec, load_regime(spec, **QUIET)) == facts  # stable (from the cache too)
    before = held["source_digest"]
    _write_jsonl(path, QA[:-1])
    assert dataset_facts(spec, data)["heldout"]["source_digest"] != before


def test_a_changed_file_is_a_new_cache_entry(tmp_path):
    path = _write_jsonl(tmp_path / "qa.jsonl", QA)
    spec = _spec(CustomData("instructions", path=str(path)))
    first = cache_folder(spec)
    _write_jsonl(path, QA[:-2])
    os.utime(path, ns=(1, 1))
    assert cache_folder(spec) != first and first.name.startswith("custom-qa-")


def test_custom_is_a_reserved_regime_name():
    with pytest.raises(ConfigError, match="reserved"):
        register_regime(Regime("custom", "ift", "mine", offline=lambda spec, log: ([], {})))
    with pytest.raises(ConfigError) as err:
        DataSpec("code_ift", custom=CustomData("text", path="x.txt")).validate()
    assert err.value.field == "custom"


STUDY = {
    "data": {"kind": "instructions", "path": "data/qa.jsonl", "name": "arith"},
    "model": "tiny-llama", "max_train_blocks": 20, "heldout_blocks": 6, "general_blocks": 4,
    "full": [], "lora": [{"ranks": [4], "lrs": [1e-3], "targets": ["all"]}],
    "budget": {"steps": 2, "seq_len": 128, "micro_batch_size": 2, "global_batch_size": 2, "milestones": [2],
               "warmup_steps": 0},
    "eval": {"suites": ["heldout_loss", "general_loss"], "batch_size": 4},
    "resources": {"num_workers": 1, "cpus_per_worker": 1.0, "max_failures": 0},
}


def test_study_reads_data_relative_to_its_folder_and_round_trips(tmp_path, monkeypatch):
    (tmp_path / "study" / "data").mkdir(parents=True)
    _write_jsonl(tmp_path / "study" / "data" / "qa.jsonl", QA)
    (tmp_path / "study" / "my_study.yaml").write_text(yaml.safe_dump(STUDY))
    monkeypatch.chdir(tmp_path)  # not the study's folder
    spec = load_study("study/my_study.yaml").spec().validate()
    assert spec.regime == "custom" and spec.data.path == str(tmp_path / "study" / "data" / "qa.jsonl")
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    data = spec.data_spec()
    assert data.custom == spec.data and data.decontaminate == ("heldout_loss", "general_loss")
    assert data.seq_len == 128 and data.heldout_blocks == 6


def test_data_stats_of_a_study(tmp_path, capsys):
    _write_jsonl(tmp_path / "qa.jsonl", QA)
    (tmp_path / "my_study.yaml").write_text(yaml.safe_dump({**STUDY, "data": {**STUDY["data"], "path": "qa.jsonl"}}))
    assert lfl_ray_main(["data", "stats", "--study", str(tmp_path / "my_study.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"custom ({tmp_path / 'qa.jsonl'}, ift, seq_len 128" in out
    assert "data 'arith' (instructions): read 40 records, kept 40 from 1 files" in out
    assert "decontamination against ['general_loss']: dropped 0" in out
    assert "heldout  rows      6" in out
    assert lfl_ray_main(["data", "stats", "code_ift", "--study", str(tmp_path / "my_study.yaml")]) == 2
    assert "must not be given with --study" in capsys.readouterr().err
    assert lfl_ray_main(["data", "stats"]) == 2
    assert "--study" in capsys.readouterr().err
