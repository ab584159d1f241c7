"""What a sweep ended with: its trials' statuses, the exit status that tells the truth, the cause of a failure."""

from __future__ import annotations

import errno
from dataclasses import dataclass

from lfl_ray.mlflow_schema import Status

EXIT_STOPPED = 1
"""The sweep itself stopped on an error (Python's status for an uncaught one; a full disk is named)."""
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


DISK_FULL_HINT = "(free space where the sweep stores checkpoints and logs)"
NO_SPACE = "No space left on device"


def describe_error(exc: BaseException) -> str:
    """The cause a user can act on: a full disk is named as one, whatever wrapped it.

    Also when the full disk broke Ray Tune itself: Tune copies the error it saved for a failed
    trial into the storage folder, and on a full disk that copy is truncated, so building the
    results fails with ``EOFError: Ran out of input`` or ``UnpicklingError: pickle data was
    truncated``; the trial's error is then read from Tune's own (local) copy and described.
    """
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full: {cause} {DISK_FULL_HINT}"
        cause = cause.__cause__ or cause.__context__
    recorded = _unread_trial_error(exc)
    if recorded is not None:
        return describe_error(recorded)
    text = f"{type(exc).__name__}: {exc}"
    if NO_SPACE in text:  # an error that crossed processes as text (a Ray worker's traceback)
        line = [line.strip() for line in text.splitlines() if NO_SPACE in line][-1]
        return f"disk full: {line} {DISK_FULL_HINT}"
    return text


def _unread_trial_error(exc: BaseException) -> BaseException | None:
    """The error Ray Tune saved for a trial, when reading it back from storage is what raised ``exc``.

    Tune's ``Trial.get_pickled_error`` reads the storage copy of ``error.pkl``; the trial's
    ``pickled_error_file`` is the local copy Tune wrote first (on the driver's disk), and
    ``error_file`` the text beside it.
    """
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        trial = frame.f_locals.get("self")
        if frame.f_code.co_name == "get_pickled_error" and hasattr(trial, "pickled_error_file"):
            try:
                import cloudpickle

                with open(trial.pickled_error_file, "rb") as handle:
                    return cloudpickle.load(handle)
            except Exception:  # noqa: BLE001 - fall back to the text Tune wrote beside it
                try:
                    with open(trial.error_file) as handle:
                        return RuntimeError(handle.read().strip() or str(exc))
                except (OSError, TypeError):
                    return None
        tb = tb.tb_next
    return None
