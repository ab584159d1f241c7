"""MBPP test set (500 problems, ``codex_mbpp``), pass@1 in the sandbox.

Optional: use it only when MBPP is not in the training data. Base models continue the
evalplus-style prompt of the request file (which ends inside a ```python fence) and are cut
at its stop sequences; chat models get the same text as a user turn and answer in a block.
"""

from __future__ import annotations

import ast

from lfl_ray.eval.prompts import chat_prompt, extract_code
from lfl_ray.eval.sandbox import Check, free_names
from lfl_ray.eval.sources import request_docs

STOP = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```", "\n#", "\n<|/", "<|im_end|>")


def load_problems() -> list[dict]:
    out = []
    for doc in request_docs("codex_mbpp", "gold_bpb_0shot"):
        out.append({"id": f"mbpp/{doc['task_id']}", "text": doc["text"],
                    "test_list": list(doc["test_list"]),
                    "test_setup_code": doc.get("test_setup_code", ""),
                    "prompt": doc["_request"]["context"]})
    return out


def make_prompt(problem: dict, tokenizer, chat: bool) -> str:
    if chat:
        user = problem["prompt"].split("\n\nBelow is a Python script")[0]
        return chat_prompt(tokenizer, user)
    return problem["prompt"]


def to_completion(problem: dict, text: str, chat: bool) -> str:
    return extract_code(text) if chat else text


def program(problem: dict, completion: str) -> Check:
    """The completion runs in the sandbox; setup code and asserts run outside against it."""
    setup, test = problem["test_setup_code"], "\n".join(problem["test_list"])
    return Check(code=completion, setup=setup, test=test,
                 names=_candidate_names(setup, test, completion))


def _candidate_names(setup: str, test: str, completion: str) -> tuple[str, ...]:
    """What the asserts call of the candidate: names they use without defining, or, when
    every name is a built-in (``assert sum(10, 15) == 6``), the first one called that the
    completion defines at top level."""
    names = free_names(setup, test)
    if names:
        return names
    try:
        defined = {n.name for n in ast.parse(completion).body
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    except SyntaxError:
        return ()
    for node in ast.walk(ast.parse(test)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in defined):
            return (node.func.id,)
    return ()
