"""Token blocks: the one data shape the training loop and the loss evals consume.

Every regime (IFT or CPT, hub or offline) ends as ``TokenBlocks``: equal-length rows of
token ids, labels (-100 where no loss is taken: prompts, padding) and an attention mask,
plus the source document of each row so held-out statistics can be paired and clustered
by document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

IGNORE_INDEX = -100


@dataclass
class TokenBlocks:
    """Rows of ``seq_len`` tokens ready for a causal LM."""

    input_ids: torch.Tensor
    """[N, L] int64 token ids (padding positions hold the pad id)."""
    labels: torch.Tensor
    """[N, L] int64; IGNORE_INDEX where no loss is taken."""
    attention_mask: torch.Tensor
    """[N, L] int64; 0 on padding."""
    doc_ids: list[str] = field(default_factory=list)
    """Source document of each row (file, problem id), for splits and clustered SEs."""

    def __post_init__(self):
        if self.input_ids.shape != self.labels.shape or self.input_ids.shape != self.attention_mask.shape:
            raise ValueError("input_ids, labels and attention_mask must have one shape")
        if not self.doc_ids:
            self.doc_ids = [str(i) for i in range(len(self))]
        if len(self.doc_ids) != len(self):
            raise ValueError("doc_ids must name one document per row")

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def loss_tokens(self) -> int:
        """Tokens that carry loss (labels != IGNORE_INDEX), before the causal shift."""
        return int((self.labels != IGNORE_INDEX).sum())

    def select(self, index) -> "TokenBlocks":
        """Rows at ``index`` (a list of ints, a slice or a tensor)."""
        if isinstance(index, slice):
            rows = list(range(len(self)))[index]
        else:
            rows = [int(i) for i in index]
        idx = torch.tensor(rows, dtype=torch.long)
        return TokenBlocks(self.input_ids[idx], self.labels[idx], self.attention_mask[idx],
                           [self.doc_ids[i] for i in rows])

    def shard(self, rank: int, world_size: int) -> "TokenBlocks":
        """This worker's rows (every ``world_size``-th), so workers never see the same row."""
        return self.select(range(rank, len(self), world_size))

    @classmethod
    def from_stream(cls, tokens, seq_len: int, doc_id: str = "stream") -> "TokenBlocks":
        """Pack a flat token stream into full blocks (CPT-style; the tail is dropped)."""
        flat = torch.as_tensor(tokens, dtype=torch.long).flatten()
        n = flat.numel() // seq_len
        if n == 0:
            raise ValueError(f"seq_len {seq_len} is longer than the stream ({flat.numel()} tokens)")
        ids = flat[: n * seq_len].view(n, seq_len).clone()
        return cls(ids, ids.clone(), torch.ones_like(ids), [f"{doc_id}:{i}" for i in range(n)])

    def save(self, path: Path) -> None:
        """Write atomically (write then rename), so a crash never leaves a torn file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({"input_ids": self.input_ids, "labels": self.labels,
                    "attention_mask": self.attention_mask, "doc_ids": self.doc_ids}, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TokenBlocks":
        data = torch.load(path, weights_only=True)
        return cls(data["input_ids"], data["labels"], data["attention_mask"], list(data["doc_ids"]))
