"""lm-evaluation-harness task configs over lfl-ray's offline data copies.

``write_tasks(folder)`` writes, for each multiple-choice suite, its rows as JSON lines in
the Hugging Face format lm-eval loads (row i is lm-eval's doc_id i and lfl-ray's item i)
and a task YAML that ``include``s lm-eval's own task config and changes only the data
source (``dataset_path: json``). Run lm-eval with ``--include_path folder`` and
``--tasks hellaswag_offline,...``: its own prompts, preprocessing and metrics then score the
very documents lfl-ray scores, which is how ``tests/eval/test_lm_eval_parity.py`` checks
lfl-ray against it per document. Needs ``lm-eval`` installed (the ``dev`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

SUFFIX = "_offline"
"""Appended to lm-eval's task name, so the override never shadows the original."""

LM_EVAL_CONFIGS = {"hellaswag": "hellaswag/hellaswag.yaml",
                   "arc_challenge": "arc/arc_challenge.yaml",
                   "winogrande": "winogrande/default.yaml"}
"""lfl-ray suite -> lm-eval's own task config (under ``lm_eval/tasks``)."""


def _suite_module(suite: str):
    from lfl_ray.eval import arc, hellaswag, winogrande

    return {"hellaswag": hellaswag, "arc_challenge": arc, "winogrande": winogrande}[suite]


def lm_eval_tasks_dir() -> Path:
    """The installed lm-eval's ``tasks`` folder."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("lm-eval is not installed: pip install -e '.[dev]' "
                                  "(it pins lm-eval[hf]==0.4.13)")
    return Path(spec.submodule_search_locations[0]) / "tasks"


def task_name(suite: str) -> str:
    """The lm-eval task name of ``suite``'s offline override."""
    return suite + SUFFIX


def write_override(task: str, config: str, split: str, rows: list[dict], folder: Path) -> str:
    """Write ``rows`` (lm-eval's row format; row i is doc_id i) and a YAML that includes
    lm-eval's ``config`` (a path under ``lm_eval/tasks``) and reads ``split`` from them, into
    ``folder``; return the override's task name (``task`` + ``SUFFIX``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{task}.jsonl"
    _write_atomic(data, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    name = task + SUFFIX
    override = {
        "include": str(lm_eval_tasks_dir() / config),
        "task": name,
        "tag": ["lfl_ray_offline"],
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(data)},
                           "cache_dir": str(folder / "hf_datasets_cache")},
        # Only the split lm-eval scores exists offline; zero-shot needs no other.
        "training_split": None,
        "validation_split": split if split == "validation" else None,
        "test_split": split if split == "test" else None,
    }
    _write_atomic(folder / f"{name}.yaml", json.dumps(override, indent=1) + "\n")
    return name


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (trial workers on one machine share the folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_task(suite: str, folder: Path, rows: list[dict] | None = None) -> str:
    """Write ``suite``'s rows and its override YAML into ``folder``; return the task name."""
    module = _suite_module(suite)
    rows = module.rows() if rows is None else rows
    return write_override(suite, LM_EVAL_CONFIGS[suite], module.SPLIT, rows, folder)


def write_tasks(folder: Path, suites=tuple(LM_EVAL_CONFIGS)) -> list[str]:
    """Write every suite's override into ``folder`` (lm-eval's ``include_path``)."""
    return [write_task(suite, folder) for suite in suites]
