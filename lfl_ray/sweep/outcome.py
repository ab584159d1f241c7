"""What a sweep ended with: its trials' statuses, the exit status that tells the truth, the cause of a failure."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from lfl_ray.mlflow_schema import Status

EXIT_BAD_INPUT = 2
"""Bad input: nothing was started."""
EXIT_SOME_FAILED = 3
"""Some trials failed (the others finished or were stopped by the scheduler)."""
EXIT_NONE_FINISHED = 4
"""No trial finished."""
EXIT_INTERRUPTED = 130
"""The sweep was interrupted (Ctrl-C); ``--resume`` continues it."""


@dataclass
class SweepOutcome:
    """What a finished sweep left behind."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    statuses: dict[str, str]
    """Trial key -> FINISHED / FAILED / EARLY_STOPPED / INTERRUPTED (Ctrl-C; --resume continues)."""
    seconds: float
    errors: dict[str, str] | None = None
    """Trial key -> the error of each FAILED trial."""

    @property
    def exit_status(self) -> int:
        """0: every trial finished or was stopped by the scheduler; 130: interrupted; 4: no trial
        finished; 3: some trials failed (``lfl_ray.sweep.cli``)."""
        values = list(self.statuses.values())
        if Status.INTERRUPTED in values:
            return EXIT_INTERRUPTED
        if not values or Status.FINISHED not in values:
            return EXIT_NONE_FINISHED
        if Status.FAILED in values:
            return EXIT_SOME_FAILED
        return 0


def describe_error(exc: BaseException) -> str:
    """The cause a user can act on: a full disk is named as one, whatever wrapped it."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full: {cause} (free space where the sweep stores checkpoints and logs)"
        cause = cause.__cause__ or cause.__context__
    text = f"{type(exc).__name__}: {exc}"
    if "No space left on device" in text:
        return f"disk full: {text}"
    return text
