"""Text -> token rows: the chat template and loss masks of IFT, packing of CPT and passages.

IFT rules:
- A model without a chat template gets the plain format of ``plain_prompt`` (instruction,
  blank line, response, EOS), with the same masks.
- The tokenizer's chat template renders user = instruction, assistant = response (SmolLM2
  adds its default system prompt); earlier turns of a chat (``Example.context``) come first,
  without loss. The prompt (everything up to and including the
  generation prompt ``<|im_start|>assistant\\n``) is labelled IGNORE_INDEX; every response
  token and the assistant's closing end-of-turn token (``<|im_end|>``) carry loss; what the
  template adds after it (a newline) is kept as input without loss. Prompt and response are
  tokenized separately and concatenated, so the mask is exact by construction and never
  derived from the pad id (SmolLM2's pad == eos == ``<|im_end|>``).
- Length rule: an example whose prompt alone is longer than half of ``seq_len`` is
  dropped; a longer example is truncated to ``seq_len`` from the end (it then loses the
  tail of its response and its closing token). Counts of both go to the stats.
- Packing (optional): examples are concatenated greedily, in order, into rows of at most
  ``seq_len`` tokens; an example never straddles two rows; the rest of a row is padding
  (attention 0, no loss). Attention is NOT kept inside each example: on the HF CPU path the
  model attends across example boundaries within a row (the same as plain concatenation
  in most packing recipes). Without packing, one example per row, padded.

CPT rules: training documents are joined with EOS and cut into full blocks of ``seq_len``
(the tail that does not fill a block is dropped); every token carries loss; the row's doc
id is the document of its first token. Held-out CPT rows are windows of one document
only (see ``document_windows``). General-text passages are one passage per row, truncated
to ``seq_len`` and padded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from lfl_ray.data.blocks import IGNORE_INDEX, TokenBlocks
from lfl_ray.data.records import Document, Example

MIN_WINDOW = 16  # a held-out window shorter than this holds too little to score


@dataclass
class Row:
    """One row before padding: ids and labels of equal length, and what it was made from."""

    doc_id: str
    """The row's document: its (first) example's, or the document of its first token."""
    ids: list[int]
    labels: list[int]
    members: list[tuple[str, str]] = field(default_factory=list)
    """(doc id, source) of every example or document with tokens in the row."""


def _batch_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def tokenize_examples(examples: list[Example], tokenizer, seq_len: int,
                      counts: Counter) -> list[Row | None]:
    """One Row per example (None where the length rule drops it); counts what was dropped."""
    prompts, responses, tails = [], [], []
    eos = tokenizer.eos_token
    for ex in examples:
        if not getattr(tokenizer, "chat_template", None):
            prompt, response = plain_prompt(ex), ex.response + (eos or "")
            prompts.append(prompt)
            responses.append(response)
            tails.append("")
            continue
        user = [{"role": role, "content": text} for role, text in ex.context]
        user.append({"role": "user", "content": ex.instruction})
        prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": ex.response}],
                                             tokenize=False)
        if not full.startswith(prompt):
            raise RuntimeError("the chat template's prompt is not a prefix of the full chat; "
                               "cannot tell prompt from response tokens")
        rest = full[len(prompt):]
        end = rest.rfind(eos) + len(eos) if eos and eos in rest else len(rest)
        prompts.append(prompt)
        responses.append(rest[:end])
        tails.append(rest[end:])
    rows: list[Row | None] = []
    for ex, p, r, t in zip(examples, _batch_ids(tokenizer, prompts), _batch_ids(tokenizer, responses),
                           _batch_ids(tokenizer, tails)):
        counts[f"seen/{ex.source}"] += 1
        if len(p) > seq_len // 2:
            counts[f"dropped_long_prompt/{ex.source}"] += 1
            rows.append(None)
            continue
        ids = p + r + t
        labels = [IGNORE_INDEX] * len(p) + list(r) + [IGNORE_INDEX] * len(t)
        if len(ids) > seq_len:
            counts[f"truncated/{ex.source}"] += 1
            ids, labels = ids[:seq_len], labels[:seq_len]
        rows.append(Row(ex.doc_id, ids, labels, [(ex.doc_id, ex.source)]))
    return rows


def plain_prompt(ex: Example) -> str:
    """The prompt of a model without a chat template: earlier turns and the instruction as
    ``Role: text`` paragraphs, then ``Assistant:`` (the response follows, then EOS)."""
    turns = [f"{role.capitalize()}: {text}" for role, text in ex.context]
    if not ex.context:
        return f"{ex.instruction}\n\n"
    return "\n\n".join(turns + [f"User: {ex.instruction}", "Assistant: "])


def tokenize_documents(docs: list[Document], tokenizer) -> list[list[int]]:
    """Token ids of each document's text (no BOS/EOS added)."""
    return _batch_ids(tokenizer, [d.text for d in docs])


def to_blocks(rows: list[Row], seq_len: int, pad_id: int) -> TokenBlocks:
    """Pad rows to ``seq_len``: pad id, no attention, no loss on padding."""
    n = len(rows)
    ids = torch.full((n, seq_len), pad_id, dtype=torch.long)
    labels = torch.full((n, seq_len), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((n, seq_len), dtype=torch.long)
    for i, row in enumerate(rows):
        k = len(row.ids)
        ids[i, :k] = torch.tensor(row.ids, dtype=torch.long)
        labels[i, :k] = torch.tensor(row.labels, dtype=torch.long)
        mask[i, :k] = 1
    return TokenBlocks(ids, labels, mask, [r.doc_id for r in rows])


class Packer:
    """Greedy packing of rows into rows of at most ``seq_len`` tokens (no straddling)."""

    def __init__(self, seq_len: int):
        self.seq_len = seq_len
        self.rows: list[Row] = []
        self.current: Row | None = None

    def add(self, row: Row) -> None:
        if self.current is not None and len(self.current.ids) + len(row.ids) > self.seq_len:
            self.flush()
        if self.current is None:
            self.current = Row(row.doc_id, list(row.ids), list(row.labels), list(row.members))
        else:
            self.current.ids += row.ids
            self.current.labels += row.labels
            self.current.members += row.members

    def flush(self) -> None:
        if self.current is not None:
            self.rows.append(self.current)
            self.current = None


def pack_stream(token_lists: list[list[int]], docs: list[Document], seq_len: int) -> list[Row]:
    """Documents (their ids already end with EOS) joined and cut into full ``seq_len`` blocks
    (the tail that does not fill a block is dropped)."""
    stream: list[int] = []
    starts: list[int] = []  # offset of each document in the stream, increasing
    for ids in token_lists:
        starts.append(len(stream))
        stream += ids
    rows, k = [], 0
    for start in range(0, len(stream) - seq_len + 1, seq_len):
        while k + 1 < len(starts) and starts[k + 1] <= start:
            k += 1
        end, j = start + seq_len, k
        members = []
        while j < len(starts) and starts[j] < end:
            members.append((docs[j].doc_id, docs[j].source))
            j += 1
        block = stream[start:end]
        rows.append(Row(docs[k].doc_id, block, list(block), members))
    return rows


def document_windows(ids: list[int], doc: Document, seq_len: int, cap: int) -> list[Row]:
    """Up to ``cap`` non-overlapping windows of one document, spread evenly over it.

    A document shorter than ``seq_len`` gives one shorter row (padded later); a final
    partial window is never used when full ones exist.
    """
    member = [(doc.doc_id, doc.source)]
    if len(ids) < MIN_WINDOW:
        return []
    full = len(ids) // seq_len
    if full == 0:
        return [Row(doc.doc_id, list(ids), list(ids), member)]
    n = min(cap, full)
    windows = [ids[p * seq_len:(p + 1) * seq_len] for p in ((i * full) // n for i in range(n))]
    return [Row(doc.doc_id, w, list(w), member) for w in windows]


def passage_row(ids: list[int], doc: Document, seq_len: int) -> Row | None:
    """One general-text passage as a row (truncated to ``seq_len``)."""
    if len(ids) < 2:
        return None
    ids = ids[:seq_len]
    return Row(doc.doc_id, ids, list(ids), [(doc.doc_id, doc.source)])
