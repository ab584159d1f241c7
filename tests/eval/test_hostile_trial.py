"""Hostile model-written code through a trial's whole milestone eval harms nothing.

A real Ray Train trial (tiny model) evaluates HumanEval at its milestone; fault injection
swaps the model's generations for programs that attack the machine: write, delete, move,
chmod outside their folder, spawn processes, kill the Ray worker, open sockets, load ctypes,
exhaust memory, loop forever, or fake a pass. The same snippets run outside the sandbox
really do the damage (the control), so a quiet filesystem here means the sandbox held.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lfl_ray.eval.milestone import MilestoneEvaluator
from lfl_ray.eval.spec import EvalSpec
from lfl_ray.methods import Full
from lfl_ray.train.config import FaultInjection, TrialConfig
from lfl_ray.train.trial import build_trainer

# {t}: a folder outside the sandbox; {home}: the real home; {mark}: a unique file name; {port}: a listener.
ATTACKS = {
    "write": "open({t!r} + '/written.txt', 'w').write('pwned')",
    "append": "open({t!r} + '/keep.txt', 'a').write('appended')",
    "pathlib": "import pathlib\npathlib.Path({t!r}, 'pathlib.txt').write_text('pwned')",
    "os.open": "import os\nfd = os.open({t!r} + '/lowlevel.txt', os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')",
    "dotdot": "open('../' * 40 + {t!r}.lstrip('/') + '/dotdot.txt', 'w').write('pwned')",
    "proc-root": "open('/proc/self/root' + {t!r} + '/proc.txt', 'w').write('pwned')",
    "home": "open({home!r} + '/' + {mark!r}, 'w').write('pwned')",
    "tmp": "open('/tmp/' + {mark!r}, 'w').write('pwned')",
    "remove": "import os\nos.remove({t!r} + '/keep.txt')",
    "rmtree": "import shutil\nshutil.rmtree({t!r})",
    "rename": "import os\nos.rename({t!r} + '/keep.txt', {t!r} + '/moved.txt')",
    "chmod": "import os\nos.chmod({t!r} + '/keep.txt', 0o777)",
    "truncate": "import os\nos.truncate({t!r} + '/keep.txt', 0)",
    "symlink": "import os\nos.symlink({t!r}, 'link')\nopen('link/via_link.txt', 'w').write('pwned')",
    "subprocess": "import subprocess\nsubprocess.run(['touch', {t!r} + '/subprocess.txt'])",
    "system": "import os\nos.system('touch ' + {t!r} + '/system.txt')",
    "exec": "import os\nos.execv('/usr/bin/touch', ['touch', {t!r} + '/exec.txt'])",
    "fork": "import os\nwhile True:\n    os.fork()",
    "kill-parent": "import os\nos.kill(os.getppid(), 9)",
    "killpg-parent": "import os\nos.killpg(os.getpgid(os.getppid()), 9)",
    "ctypes": "import ctypes\nctypes.CDLL(None).system(('touch ' + {t!r} + '/ctypes.txt').encode())",
    "socket": "import socket\nsocket.create_connection(('127.0.0.1', {port})).sendall(b'pwned')",
    "audit-hook": "import sys\nsys.addaudithook(lambda *a: None)\nopen({t!r} + '/hooked.txt', 'w')",
    "exit-0": "import sys\nsys.exit(0)",
    "os-exit-0": "import os\nos._exit(0)",
    "memory": "x = bytearray(8 << 30)",
    "forever": "while True:\n    pass",
}
# Run unsandboxed as the control (the ones that only touch the control folder).
CONTROL = ("write", "append", "remove", "rmtree", "rename", "chmod", "subprocess", "system", "symlink")


def _completion(code: str) -> str:
    """A chat answer: the attack at module level, then a body-less stub (no test can pass)."""
    return f"Here you go:\n```python\n{code}\n```\n"


def _target(root: Path) -> Path:
    target = root / "outside"
    (target / "sub").mkdir(parents=True)
    (target / "keep.txt").write_text("keep")
    (target / "sub" / "nested.txt").write_text("nested")
    os.chmod(target / "keep.txt", 0o644)
    return target


def _snapshot(root: Path) -> dict:
    if not root.exists():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns,
                                            path.read_bytes() if path.is_file() else None)
    return out


def test_attacks_do_harm_outside_the_sandbox(tmp_path):
    """The control: without the sandbox each snippet changes the folder it targets."""
    for name in CONTROL:
        target = _target(tmp_path / name)
        before = _snapshot(target)
        work = tmp_path / name / "work"
        work.mkdir()
        code = ATTACKS[name].format(t=str(target), home="/nonexistent", mark="x", port=9)
        subprocess.run([sys.executable, "-c", code], cwd=work, timeout=30, capture_output=True)
        assert _snapshot(target) != before, name


@pytest.mark.timeout(600)
def test_hostile_completions_through_a_trial_eval_change_nothing(ray_local, pattern_blocks, tmp_path):
    import mlflow

    target = _target(tmp_path)
    before = _snapshot(target)
    mark = f"lfl_pwned_{secrets.token_hex(6)}"
    home = str(Path.home())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    sandboxes_before = set(Path(tempfile.gettempdir()).glob("lfl_sandbox_*"))
    completions = tuple(_completion(code.format(t=str(target), home=home, mark=mark,
                                                port=listener.getsockname()[1]))
                        for code in ATTACKS.values())

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("hostile", artifact_location=str(tmp_path / "art")))
    from lfl_ray.tracking import RunLogger

    spec = EvalSpec(suites=("humaneval",), limits={"humaneval": len(ATTACKS)}, chat=True,
                    max_new_tokens=8, learning_metric="humaneval_pass1")
    evaluator = MilestoneEvaluator(spec, "tiny-llama", None, None, require_primary=False)
    cfg = TrialConfig(method=Full(), lr=1e-3, total_steps=2, milestones=(2,), num_workers=1,
                      cpus_per_worker=1.0, micro_batch_size=2, global_batch_size=2, report_every=1,
                      fault=FaultInjection(hostile_completions=completions))
    result = build_trainer(cfg, pattern_blocks, name="hostile", storage_path=str(tmp_path / "rr"),
                           evaluator=evaluator, logger=RunLogger(uri, run.info.run_id)).fit()

    assert result.error is None  # the Ray worker that ran the eval survived every attack
    assert result.metrics["step"] == 2 and result.metrics["humaneval_pass1"] == 0.0
    logged = Path(client.download_artifacts(run.info.run_id, "evals", str(tmp_path / "dl")))
    evals = json.loads(next(logged.glob("milestone_*.json")).read_text())
    assert len(evals["items"]["humaneval_pass1"]) == len(ATTACKS)  # every attack was executed
    assert not any(evals["items"]["humaneval_pass1"])  # none faked a pass (exit 0, os._exit(0))
    assert "```python" in json.dumps(evals["samples"])  # the logged samples are the attacks

    assert _snapshot(target) == before  # nothing written, deleted, moved, chmod-ed, touched
    for leftover in (Path("/tmp") / mark, Path(home) / mark):
        assert not leftover.exists(), leftover
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection was made
    listener.close()
    assert set(Path(tempfile.gettempdir()).glob("lfl_sandbox_*")) <= sandboxes_before  # cleaned up
