"""A study's own learning evals (``eval.custom``): the user's prompts, references, questions.

Two kinds, each read from a JSON-lines file whose fields the study names:

- ``generation``: ``{prompt, reference}`` rows. The model answers each prompt greedily (with
  the chat template when the tokenizer has one, unless ``eval.chat`` says otherwise) and
  the answer is scored by ``scorer``: ``exact_match`` (equal after trimming whitespace),
  ``contains`` (the reference occurs in the answer), or a path to a Python file defining
  ``score(completion: str, reference: str) -> float`` (0..1). The model's answers are
  hostile data, so the user's ``score`` runs in ``lfl_ray.eval.sandbox`` and only numbers
  come back. Metric: ``<name>_score``.
- ``multiple_choice``: ``{question, choices, answer}`` rows (answer: the index or the text
  of the right choice), scored like ARC: the log-likelihood of each `` choice`` after
  ``Question: ...\\nAnswer:``. Metrics: ``<name>_acc``, ``<name>_acc_norm``.

The items are read once on the driver and shipped with the evaluator, so workers never need
the files. Any of these metrics can be the study's ``eval.learning_metric``.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

from lfl_ray.errors import ConfigError
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.prompts import chat_prompt, uses_chat
from lfl_ray.eval.registry import Suite, register_spec_resolver
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import N_SAMPLES_KEPT, summarize

SCORERS = ("exact_match", "contains")
"""Built-in scorers; any other ``scorer`` is a path to a ``.py`` file defining ``score``."""


def _where(spec, custom) -> str:
    return f"eval.custom[{list(spec.custom).index(custom)}]"


def read_rows(custom, where: str) -> list[dict]:
    """The rows of ``custom.path`` with the fields its kind needs, or a ConfigError naming
    the file, the line and the fields seen."""
    path = Path(custom.path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}.path", custom.path, "must be an existing .jsonl file")
    fields = (("prompt_field", "reference_field") if custom.kind == "generation"
              else ("question_field", "choices_field", "answer_field"))
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}.path", f"{custom.path}:{number}", f"is not JSON ({e.msg})")
            if not isinstance(row, dict):
                raise ConfigError(f"{where}.path", f"{custom.path}:{number}", "must be a JSON object")
            for field in fields:
                if getattr(custom, field) not in row:
                    raise ConfigError(f"{where}.{field}", getattr(custom, field),
                                      f"is not a field of {custom.path}:{number}; fields seen: {sorted(row)}")
            rows.append(row)
    if not rows:
        raise ConfigError(f"{where}.path", custom.path, "has no rows")
    return rows


def _choice_item(custom, row: dict, index: int, where: str):
    from lfl_ray.eval.multiple_choice import MCItem

    choices = row[custom.choices_field]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise ConfigError(f"{where}.choices_field", choices, f"row {index + 1}: must be a list of 2+ strings")
    answer = row[custom.answer_field]
    if isinstance(answer, str) and answer in choices:
        answer = choices.index(answer)
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ConfigError(f"{where}.answer_field", answer,
                          f"row {index + 1}: must be an index into the {len(choices)} choices or one of them")
    context = f"Question: {row[custom.question_field]}\nAnswer:"
    return MCItem(id=str(row.get("id", index)), contexts=(context,) * len(choices),
                  continuations=tuple(" " + c for c in choices), gold=answer,
                  group=str(row.get("id", index)), choices=tuple(choices))


def _scorer_source(custom, where: str) -> str | None:
    if custom.scorer in SCORERS:
        return None
    path = Path(custom.scorer).expanduser()
    if path.suffix != ".py" or not path.is_file():
        raise ConfigError(f"{where}.scorer", custom.scorer,
                          f"must be one of {list(SCORERS)} or an existing .py file defining score()")
    source = path.read_text(encoding="utf-8")
    if "def score" not in source:
        raise ConfigError(f"{where}.scorer", custom.scorer, "must define score(completion, reference)")
    return source


_COLLECTED: dict[str, dict[int, float]] = {}
_LOCK = threading.Lock()


def _collect(token: str, index: int, value) -> None:
    """Called by the trusted test (in this process) with each score the sandbox returned."""
    with _LOCK:
        _COLLECTED.setdefault(token, {})[index] = float(value)


def sandboxed_scores(source: str, completions: list[str], references: list[str]) -> list[float]:
    """``score(c, r)`` of the user's ``source`` for each pair, run in the sandbox; a call that
    raises, returns a non-number or is out of [0, 1] scores 0."""
    from lfl_ray.eval.sandbox import Check, run_untrusted

    token = uuid.uuid4().hex
    pairs = json.dumps(list(zip(completions, references)))
    test = ("import json\nimport lfl_ray.eval.catalog.user as _user\n"
            f"for _i, (_c, _r) in enumerate(json.loads({pairs!r})):\n"
            "    try:\n        _v = score(_c, _r)\n    except Exception:\n        continue\n"
            "    if isinstance(_v, (bool, int, float)) and 0 <= _v <= 1:\n"
            f"        _user._collect({token!r}, _i, _v)\n")
    run_untrusted(Check(code=source, test=test, names=("score",)),
                  timeout=10.0 + 0.5 * len(completions))
    with _LOCK:
        got = _COLLECTED.pop(token, {})
    return [got.get(i, 0.0) for i in range(len(completions))]


def _generation_suite(custom, where: str) -> Suite:
    source = _scorer_source(custom, where)

    def load(spec, **_):
        rows = read_rows(custom, where)
        return [rows[i] for i in subset_indices(custom.name, spec, len(rows))]

    def run(backend, spec, rows, reference=None) -> EvalResult:
        chat = uses_chat(backend.tokenizer, spec.chat)
        prompts = [chat_prompt(backend.tokenizer, r[custom.prompt_field]) if chat
                   else r[custom.prompt_field] for r in rows]
        outputs = backend.generate(prompts, max_new_tokens=custom.max_new_tokens,
                                   stop=tuple(custom.stop), seed=spec.seed,
                                   desc=f"{custom.name} generate")
        answers = [out[0] for out in outputs]
        refs = [str(r[custom.reference_field]) for r in rows]
        if custom.scorer == "exact_match":
            values = [float(a.strip() == ref.strip()) for a, ref in zip(answers, refs)]
        elif custom.scorer == "contains":
            values = [float(ref.strip() in a) for a, ref in zip(answers, refs)]
        else:
            values = sandboxed_scores(source, answers, refs)
        result = EvalResult()
        ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
        summarize(result, f"{custom.name}_score", values, ids)
        for i in range(min(N_SAMPLES_KEPT, len(rows))):
            result.samples.append({"suite": custom.name, "id": ids[i], "prompt": prompts[i][-500:],
                                   "completion": answers[i], "correct": bool(values[i] >= 1.0)})
        return result

    return Suite(name=custom.name, kind="generation", load=load, run=run,
                 scores={f"{custom.name}_score": True}, doc=f"the study's generation eval {custom.path}")


def _choice_suite(custom, where: str) -> Suite:
    def load(spec, **_):
        rows = read_rows(custom, where)
        items = [_choice_item(custom, row, i, where) for i, row in enumerate(rows)]
        return [items[i] for i in subset_indices(custom.name, spec, len(items))]

    def run(backend, spec, items, reference=None) -> EvalResult:
        from lfl_ray.eval.multiple_choice import choice_scores, score_items

        return score_items(custom.name, items, choice_scores(backend, items, desc=custom.name),
                           headline="acc_norm")

    return Suite(name=custom.name, kind="choice", load=load, run=run,
                 scores={f"{custom.name}_acc_norm": True, f"{custom.name}_acc": True},
                 doc=f"the study's multiple-choice eval {custom.path}")


def custom_suite(name: str, spec) -> Suite | None:
    """The suite ``name`` declared in ``spec.custom``, or None."""
    for custom in getattr(spec, "custom", ()):
        if custom.name == name:
            where = _where(spec, custom)
            return (_generation_suite if custom.kind == "generation" else _choice_suite)(custom, where)
    return None


register_spec_resolver(custom_suite)
