"""The two text shapes every source yields before tokenizing: IFT examples and documents.

``doc_id`` is the unit of the train/held-out split and the id of every row built from it:
a problem, a task, a source file, a documentation section. Several records may share one
``doc_id`` (all functions mined from one stdlib file, all instances of one gsm_symbolic
template), and then they always land on the same side of the split.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One instruction-tuning pair: the user's instruction and the assistant's response."""

    doc_id: str
    """Split unit and row id, prefixed by its source (``codeio/17``, ``math/algebra/3``)."""
    source: str
    """Which source it came from (``codeio``, ``stdlib_functions``, ``math``, ``gsm_symbolic``)."""
    instruction: str
    """The user turn (no loss)."""
    response: str
    """The assistant turn (loss on every token, plus the closing end-of-turn token)."""
    context: tuple[tuple[str, str], ...] = ()
    """Earlier turns of a chat as (role, content) pairs, a system prompt included: rendered
    before the instruction, never with loss (only the last assistant turn carries loss)."""


@dataclass(frozen=True)
class Document:
    """One text for continued pretraining or general-text loss."""

    doc_id: str
    """Split unit and row id, prefixed by its source (``stdlib/json/decoder.py``)."""
    source: str
    """Which source it came from (``stdlib``, ``math``, ``pari``, ``lambada``, ...)."""
    text: str
    """The raw text (loss on every token)."""
