"""Deterministic document-level splits: which documents are held out, in which order the
rest is trained on.

The unit is the ``doc_id`` (a problem, a task, a file, a template, a section): every record
of a document lands on one side. Held-out documents are drawn round-robin across sources
(``codeio``, ``stdlib_functions``; ``math``, ``pari``, ``maxima``...), each source's
documents in a seeded shuffle, so the held-out set spans every source and many documents;
the builder then takes at most ``heldout_doc_cap`` rows from each.
"""

from __future__ import annotations

import random
from collections import defaultdict

from lfl_ray.data.records import Document, Example


def group_by_document(records: list[Example | Document]) -> dict[str, list[Example | Document]]:
    """Records grouped by doc id, in first-seen order."""
    groups: dict[str, list] = defaultdict(list)
    for record in records:
        groups[record.doc_id].append(record)
    return dict(groups)


def heldout_order(groups: dict[str, list], seed: int) -> list[str]:
    """Every doc id, in the order held-out documents are drawn (round-robin over sources)."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for doc_id, records in groups.items():
        by_source[records[0].source].append(doc_id)
    queues = []
    for k, source in enumerate(sorted(by_source)):
        ids = sorted(by_source[source])
        random.Random(seed * 7919 + k).shuffle(ids)
        queues.append(ids)
    order = []
    for i in range(max((len(q) for q in queues), default=0)):
        order += [q[i] for q in queues if i < len(q)]
    return order


def train_order(items: list, seed: int) -> list:
    """A seeded shuffle of the training records (or documents), independent of the held-out draw."""
    items = list(items)
    random.Random(seed * 104729 + 1).shuffle(items)
    return items
