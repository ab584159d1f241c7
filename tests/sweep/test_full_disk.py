"""A real full disk: a sweep whose --storage-path is a tiny tmpfs ends named, final and non-zero.

The tmpfs is mounted in a mount namespace of the sweep's own (``unshare --mount``): nothing else
on the machine sees it, and it is gone when the sweep and its Ray processes are (the script also
unmounts it itself). Where mounting is not allowed (not root, no ``unshare``, a container without
CAP_SYS_ADMIN), the test skips and says why. The MLflow store stays on the normal disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lfl_ray.sweep.outcome import EXIT_STOPPED, describe_error

BIN = Path(sys.executable).parent
SIZE = "4m"
"""Room for the probe file and Tune's state, not for the first checkpoint of a full-FT trial of the
tiny model (its weights alone are about 13 MB)."""
# Mount a tmpfs of $1 bytes on $2 (exit 97 if not allowed), run the rest, unmount, keep the status.
IN_NAMESPACE = ('mount -t tmpfs -o "size=$1" lfl-full-disk "$2" || exit 97; dir=$2; shift 2; "$@"; rc=$?; '
                'umount "$dir" 2>/dev/null || umount -l "$dir"; exit $rc')
NOT_ALLOWED = 97


def _in_small_filesystem(size: str, folder: Path, cmd: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_NAMESPACE, "sh", size, str(folder), *cmd]


def _require_mounting(folder: Path) -> None:
    """Skip (saying why) unless a tmpfs can be mounted here in a mount namespace of its own."""
    if shutil.which("unshare") is None:
        pytest.skip("needs `unshare` (util-linux) to mount a small filesystem in a namespace of its own")
    probe = subprocess.run(_in_small_filesystem("1m", folder, ["true"]), capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        pytest.skip(f"mounting a tmpfs is not allowed here (needs root or CAP_SYS_ADMIN): {why}")


def _mounted(folder: Path) -> bool:
    return any(line.split()[4] == str(folder) for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.mark.slow
def test_a_sweep_on_a_full_disk_ends_named_final_and_non_zero(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    _require_mounting(small)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"  # the normal disk
    sweep = [str(BIN / "lfl-ray"), "sweep", "code_ift", "--preset", "smoke", "--name", "full-disk",
             "--set", "full=[{lrs: [0.002]}]", "--set", "lora=[]", "--set", "scheduler=none",
             "--set", "budget.steps=2", "--set", "budget.milestones=[2]", "--set", "budget.warmup_steps=0",
             "--tracking-uri", uri, "--storage-path", str(small)]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR", "LFL_RAY_TMPDIR_OWNER")}
    proc = subprocess.Popen(_in_small_filesystem(SIZE, small, sweep), cwd=tmp_path, env=dict(env, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the namespace, and its tmpfs, go with its processes
            proc.wait()
    assert not _mounted(small)  # never visible outside the sweep's namespace
    assert proc.returncode not in (0, NOT_ALLOWED), out[-4000:]
    assert proc.returncode == EXIT_STOPPED, out[-4000:]
    # Tune's copy of the trial's error on the full disk was truncated; the cause is still named.
    assert "error: the sweep stopped: disk full: " in out and "No space left on device" in out, out[-4000:]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("full-disk").experiment_id])
    parents = [r for r in runs if r.data.tags.get("lfl.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("lfl.role") == "trial"]
    assert len(parents) == 1 and trials
    for run in parents + trials:
        assert run.info.status == "FAILED", (run.info.run_name, run.info.status, run.data.tags.get("lfl.error"))
    assert parents[0].data.tags["lfl.error"].startswith("disk full: "), parents[0].data.tags["lfl.error"]
    for run in trials:
        assert "disk full: " in run.data.tags["lfl.error"], run.data.tags["lfl.error"][-2000:]


WORKER_TRACEBACK = ("WorkerGroupError: Training failed due to worker errors:\n[Rank 0 Error Snippet]:\n"
                    "Traceback (most recent call last):\n  File \"pyarrow/error.pxi\", line 92\n"
                    "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device\n")


def test_a_full_disk_in_a_workers_traceback_is_named_in_one_line():
    cause = describe_error(RuntimeError(WORKER_TRACEBACK))
    assert cause.startswith("disk full: OSError: [Errno 28] Error writing bytes") and "\n" not in cause


class _Trial:
    """The shape of Ray Tune's Trial where it reads a trial's error back from storage."""

    def __init__(self, folder: Path):
        self.pickled_error_file = folder / "local" / "error.pkl"
        self.error_file = folder / "local" / "error.txt"
        self.stored = folder / "storage" / "error.pkl"

    def get_pickled_error(self):
        import cloudpickle

        with open(self.stored, "rb") as handle:
            return cloudpickle.loads(handle.read())


def test_a_truncated_copy_of_a_trials_error_is_read_from_tunes_local_one(tmp_path):
    """On a full disk Tune's copy of error.pkl in storage is cut short; the sweep then fails with
    EOFError/UnpicklingError, and the cause is the trial's error as Tune saved it locally."""
    import cloudpickle

    trial = _Trial(tmp_path)
    for folder in ("local", "storage"):
        (tmp_path / folder).mkdir()
    whole = cloudpickle.dumps(RuntimeError(WORKER_TRACEBACK))
    trial.pickled_error_file.write_bytes(whole)
    for stored in (b"", whole[:20]):  # EOFError: Ran out of input; UnpicklingError: pickle data was truncated
        trial.stored.write_bytes(stored)
        with pytest.raises(Exception) as caught:
            trial.get_pickled_error()
        assert describe_error(caught.value).startswith("disk full: OSError: [Errno 28]")
    trial.pickled_error_file.unlink()  # no local pickle: the text Tune wrote beside it
    trial.error_file.write_text("Failure # 1\n" + WORKER_TRACEBACK)
    with pytest.raises(EOFError) as caught:
        trial.stored.write_bytes(b"")
        trial.get_pickled_error()
    assert describe_error(caught.value).startswith("disk full: ")
    trial.error_file.unlink()
    assert describe_error(caught.value) == "EOFError: Ran out of input"
