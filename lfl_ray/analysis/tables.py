"""Tables as markdown (stdout, files) and HTML (the report), from the same header + rows."""

from __future__ import annotations

import html
from typing import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-style markdown table; ``(none)`` when there are no rows."""
    if not rows:
        return "(none)"
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """An HTML table with escaped cells; a paragraph saying so when there are no rows."""
    if not rows:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
