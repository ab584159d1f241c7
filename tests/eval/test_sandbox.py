"""Model-written code runs without harming files, processes or memory of this machine."""

from __future__ import annotations

import os
import textwrap

import pytest

from lfl_ray.eval.sandbox import run_untrusted


def _session_alive(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (the sandbox child's own session)."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields[3] = session id
            alive.append(int(entry))
    return alive


@pytest.fixture
def victims(tmp_path):
    """Files and a folder outside the sandbox that hostile programs go after."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("deep")
    return folder


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_text() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


HOSTILE = {
    "os.remove": "import os\nos.remove({keep!r})",
    "os.unlink via posix": "import posix\nposix.unlink({keep!r})",
    "shutil.rmtree": "import shutil\nshutil.rmtree({folder!r})",
    "pathlib unlink": "import pathlib\npathlib.Path({keep!r}).unlink()",
    "overwrite": "open({keep!r}, 'w').write('pwned')",
    "append via os.open": "import os\nfd = os.open({keep!r}, os.O_WRONLY | os.O_APPEND)\nos.write(fd, b'x')",
    "create file": "open({folder!r} + '/new.txt', 'w').write('x')",
    "rename": "import os\nos.rename({keep!r}, {keep!r} + '.bak')",
    "fork loop": "import os\nwhile True:\n    os.fork()",
    "posix fork": "import posix\nwhile True:\n    posix.fork()",
    "subprocess": "import subprocess\nsubprocess.run(['rm', '-rf', {folder!r}])",
    "os.system": "import os\nos.system('rm -rf ' + {folder!r})",
    "ctypes": "import ctypes\nctypes.CDLL(None).unlink({keep!r}.encode())",
    "huge allocation": "x = []\nwhile True:\n    x.append(bytearray(10**8))",
    "one huge allocation": "x = bytearray(8 * 1024**3)",
    "infinite loop": "while True:\n    pass",
    "sleep": "import time\ntime.sleep(60)",
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "os._exit(0)": "import os\nos._exit(0)",
    "fakes a verdict": "import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b'passed')\n    except OSError:\n        pass\nos._exit(0)",
    "kill parent": "import os\nos.kill(os.getppid(), 9)",
    "raise": "raise ValueError('no')",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_fails_without_harm(name, victims):
    before = _snapshot(victims)
    code = HOSTILE[name].format(keep=str(victims / "keep.txt"), folder=str(victims))
    code += "\nassert False, 'the check fails, so nothing may count as passed'"
    result = run_untrusted(code, timeout=2.0, memory_bytes=512 << 20)
    assert not result.passed, result
    assert result.seconds < 10
    assert _snapshot(victims) == before  # nothing outside the temp dir changed
    assert _session_alive(result.pid) == []  # no process left behind


def test_benign_program_passes_and_may_use_its_temp_dir():
    code = textwrap.dedent("""
        import hashlib, math, os, json
        with open("scratch.txt", "w") as f:
            f.write("ok")
        assert open("scratch.txt").read() == "ok"
        assert hashlib.md5(b"x").hexdigest() and math.sqrt(4) == 2
    """)
    result = run_untrusted(code, timeout=5.0)
    assert result.passed, result
    assert result.status == "passed"


def test_failing_assertion_fails():
    assert run_untrusted("assert 1 + 1 == 3").status == "failed"


def test_timeout_is_reported_and_fast():
    result = run_untrusted("while True:\n    pass", timeout=1.0)
    assert result.status == "timed out"
    assert result.seconds < 5
