"""Malformed `data:` declarations: `lfl-ray sweep STUDY --dry-run` exits 2 naming the field or
the file, before any Ray work, and leaves nothing on disk (no MLflow store, no Tune folder)."""

from __future__ import annotations

import json

import pytest
import yaml

from lfl_ray.sweep.cli import main

pytestmark = pytest.mark.usefixtures("no_ray_work")  # nothing here may start Ray

BASE = {
    "model": "tiny-llama", "max_train_blocks": 16, "heldout_blocks": 4, "general_blocks": 4,
    "full": [], "lora": [{"ranks": [4], "lrs": [1e-3], "targets": ["all"]}],
    "budget": {"steps": 2, "seq_len": 128, "micro_batch_size": 2, "global_batch_size": 2, "milestones": [2],
               "warmup_steps": 0},
    "eval": {"suites": ["heldout_loss", "general_loss"], "batch_size": 4},
    "resources": {"num_workers": 1, "cpus_per_worker": 1.0, "max_failures": 0},
}
QA = [{"id": i, "question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}."} for i in range(12)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _general_passage() -> str:
    from lfl_ray.data import offline

    return max((d.text for d in offline.lambada_documents()[:50]), key=len)


# (case id, files to write {relative path: text}, the `data:` section (or whole-spec overrides),
#  strings the error must contain)
CASES = [
    ("missing-file", {}, {"kind": "instructions", "path": "./nope.jsonl"},
     ["data.path", "nope.jsonl", "nothing is there"]),
    ("unsupported-extension", {"train.xlsx": "x"}, {"kind": "instructions", "path": "./train.xlsx"},
     ["data.path", "train.xlsx", ".jsonl"]),
    ("empty-folder", {"empty/": None}, {"kind": "instructions", "path": "./empty"},
     ["data.path", "empty", "it is empty"]),
    ("folder-of-other-files", {"docs/a.txt": "hello", "docs/b.txt": "world"},
     {"kind": "instructions", "path": "./docs"}, ["data.path", "docs", "'.txt': 2"]),
    ("unknown-prompt-field", {"t.jsonl": _jsonl(QA)},
     {"kind": "instructions", "path": "./t.jsonl", "prompt_field": "query", "response_field": "answer"},
     ["data.prompt_field", "'query'", "t.jsonl", "fields seen: ['id', 'question', 'answer']"]),
    ("unknown-response-field", {"t.jsonl": _jsonl(QA)},
     {"kind": "instructions", "path": "./t.jsonl", "prompt_field": "question", "response_field": "answr"},
     ["data.response_field", "answr", "fields seen", "did you mean `answer`"]),
    ("unknown-text-field", {"t.jsonl": _jsonl(QA)}, {"kind": "text", "path": "./t.jsonl", "text_field": "body"},
     ["data.text_field", "body", "fields seen: ['id', 'question', 'answer']"]),
    ("unknown-document-field", {"t.jsonl": _jsonl(QA)},
     {"kind": "instructions", "path": "./t.jsonl", "document_field": "topic"},
     ["data.document_field", "topic", "fields seen"]),
    ("mapping-matches-no-field", {"t.jsonl": _jsonl([{"q": r["question"], "a": r["answer"]} for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl"},
     ["data.prompt_field", "no known prompt/response", "fields seen: ['q', 'a']"]),
    ("mapping-matches-only-empty-values", {"t.jsonl": _jsonl([dict(r, note="") for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl", "prompt_field": "question", "response_field": "note"},
     ["data.response_field", "'note'", "matches nothing", "12 rows"]),
    ("empty-rows", {"t.jsonl": _jsonl([dict(r, answer="" if r["id"] in (3, 7) else r["answer"]) for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl"}, ["data.path", "t.jsonl", "2 rows with an empty", "row 4",
                                                      "skip_empty"]),
    ("empty-file", {"t.jsonl": "\n"}, {"kind": "instructions", "path": "./t.jsonl"},
     ["data.path", "t.jsonl", "at least one row"]),
    ("bad-json-line", {"t.jsonl": _jsonl(QA[:3]) + "{not json\n"}, {"kind": "instructions", "path": "./t.jsonl"},
     ["data.path", "t.jsonl:4", "one JSON object per line"]),
    ("json-line-not-an-object", {"t.jsonl": _jsonl(QA[:3]) + "[1, 2]\n"},
     {"kind": "instructions", "path": "./t.jsonl"}, ["data.path", "t.jsonl:4", "list"]),
    ("json-not-a-list", {"t.json": json.dumps({"a": 1, "b": 2})}, {"kind": "instructions", "path": "./t.json"},
     ["data.path", "t.json", "list of objects"]),
    ("csv-without-the-fields", {"t.csv": "x,y\n1,2\n"}, {"kind": "instructions", "path": "./t.csv",
                                                          "prompt_field": "question", "response_field": "answer"},
     ["data.prompt_field", "t.csv", "fields seen: ['x', 'y']"]),
    ("field-holds-a-mapping", {"t.jsonl": _jsonl([dict(r, question={"text": "hi"}) for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl"}, ["data.prompt_field", "t.jsonl row 1", "must hold text"]),
    ("chat-not-ending-with-assistant",
     {"c.jsonl": _jsonl([{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]}])},
     {"kind": "instructions", "path": "./c.jsonl"}, ["data.messages_field", "c.jsonl row 1", "assistant"]),
    ("chat-unknown-role",
     {"c.jsonl": _jsonl([{"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "x"}]}])},
     {"kind": "instructions", "path": "./c.jsonl"}, ["data.messages_field", "'bot'"]),
    ("single-document", {"t.jsonl": _jsonl(QA[:1])}, {"kind": "instructions", "path": "./t.jsonl"},
     ["data.path", "at least 2 documents"]),
    ("every-prompt-longer-than-seq_len",
     {"t.jsonl": _jsonl([dict(r, question="word " * 300) for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl"}, ["seq_len", "128", "too small"]),
    ("copies-an-eval-set", {"t.jsonl": lambda: _jsonl([dict(r, answer=_general_passage()) for r in QA])},
     {"kind": "instructions", "path": "./t.jsonl"}, ["data.decontaminate", "general_loss"]),
    ("unknown-key", {"t.jsonl": _jsonl(QA)}, {"kind": "instructions", "path": "./t.jsonl", "prompt_feild": "q"},
     ["data.prompt_feild", "not a field", "did you mean `prompt_field`"]),
    ("wrong-type", {"t.jsonl": _jsonl(QA)}, {"kind": "instructions", "path": "./t.jsonl", "max_rows": "ten"},
     ["data.max_rows", "'ten'", "integer"]),
    ("unknown-kind", {"t.jsonl": _jsonl(QA)}, {"kind": "poems", "path": "./t.jsonl"},
     ["data.kind", "poems", "instructions", "text"]),
    ("path-and-hub", {"t.jsonl": _jsonl(QA)}, {"kind": "text", "path": "./t.jsonl", "hub": "org/name"},
     ["data.path", "exactly one of path"]),
    ("neither-path-nor-hub", {}, {"kind": "text"}, ["data.path", "exactly one of path"]),
    ("text-field-on-instructions", {"t.jsonl": _jsonl(QA)},
     {"kind": "instructions", "path": "./t.jsonl", "text_field": "question"}, ["data.text_field", "kind 'text'"]),
    ("prompt-without-response", {"t.jsonl": _jsonl(QA)},
     {"kind": "instructions", "path": "./t.jsonl", "prompt_field": "question"},
     ["data.response_field", "together with prompt_field"]),
    ("regime-beside-data", {"t.jsonl": _jsonl(QA)}, {"regime": "code_ift", "data": {"kind": "instructions",
                                                                                 "path": "./t.jsonl"}},
     ["regime", "code_ift", "'custom'"]),
    ("custom-without-data", {}, {"regime": "custom"}, ["data", "is required with regime 'custom'"]),
]


@pytest.mark.parametrize("files,data,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_exits_2_naming_the_field_before_ray(files, data, needles, tmp_path, monkeypatch, capsys):
    for relative, text in files.items():
        target = tmp_path / relative
        if text is None:
            target.mkdir(parents=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text() if callable(text) else text)
    if "kind" in data:
        data = {"data": data}
    study = tmp_path / "my_study.yaml"
    study.write_text(yaml.safe_dump({**BASE, **data}))
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    code = main([str(study), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert set(tmp_path.rglob("*")) == before  # no MLflow store, no Tune folder
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
