"""Turning a task's text into the prompt a model sees: raw for base models, chat for instruct.

An instruct model such as SmolLM2-135M-Instruct answers in a fenced code block, so for chat
prompts the completion is the extracted block, not the raw text.
"""

from __future__ import annotations

import re


def uses_chat(tokenizer, chat: bool | None) -> bool:
    """Whether to prompt with the chat template (``chat=None``: if the tokenizer has one)."""
    if chat is None:
        return bool(getattr(tokenizer, "chat_template", None))
    return chat


def chat_prompt(tokenizer, user: str) -> str:
    """``user`` as one user turn, ready for the assistant's answer."""
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)


_FENCE = re.compile(r"```[ \t]*(?:python3?|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The first fenced code block of ``text`` (to the end if unclosed), else ``text``."""
    match = _FENCE.search(text)
    return match.group(1) if match else text
