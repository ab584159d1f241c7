"""Run untrusted, model-written Python isolated by the operating system; judge it from outside.

Isolation (what :func:`isolation` reports; chosen once per process, logged once):

1. ``bubblewrap`` (Debian ``bubblewrap``; works as root in this container): every program
   runs in a fresh process tree in its own PID, network, IPC, UTS and cgroup namespaces and
   mount namespace whose root is an empty tmpfs holding only read-only binds of ``/usr`` and
   of the Python installation (its site-packages hidden under an empty tmpfs), a fresh
   ``/proc`` of the sandbox's own processes, a minimal ``/dev`` and a private ``/tmp`` tmpfs
   of ``WRITE_BYTES`` (the total it can write; it is the working directory and vanishes with
   the namespace). No ``$HOME``, no caches, no repository, no canonical solutions, no other
   process to see, read or signal; only a loopback device. ``setpriv`` then drops to a fresh
   uid/gid of its own (no passwd entry, no groups, no capabilities, empty bounding set,
   no-new-privileges), so RLIMIT_NPROC counts only this program's processes.
2. ``setpriv`` (bubblewrap missing or refused): the same fresh uid, no capabilities and
   no-new-privileges in a fresh process with a temporary working directory, but the
   machine's filesystem stays visible as that uid sees it (world-readable files, writable
   world-writable folders) and so do other processes' ``/proc`` entries (not their memory or
   environment: another uid). Leftover processes of the uid are killed after the run.
3. ``rlimits`` (not root, nor any of the above): the caller's own uid, with the limits and
   syscall filter below only. This cannot keep hostile code from the caller's files.

In every layer: a clean environment (``python -I -S``, a handful of variables), stdout and
stderr to /dev/null, a wall-clock timeout after which every process of the run's uid is
killed (which ends its PID namespace; a run returns only once none is left), and limits set by the trusted runner before any untrusted code:
address space and data (``memory_bytes``), CPU seconds, file size (``FILE_BYTES``),
processes (``PROCESSES``), open files, no core dumps; plus a seccomp filter, compiled here
by libseccomp (``pyseccomp``) and loaded by the runner (no-new-privileges, then
``PR_SET_SECCOMP``), refusing ``socket`` other than AF_UNIX, namespace creation, ptrace,
``process_vm_*``, mount, keyrings, bpf, perf, userfaultfd, io_uring and module/kexec calls.

``LFL_RAY_SANDBOX=bubblewrap`` (or ``setpriv``, ``rlimits``) demands one layer: if it does
not work here, every run raises instead of falling back.

The verdict is decided where the program cannot reach. A :class:`Check` splits a problem
into the untrusted ``code`` (prompt + completion), which alone runs in the sandbox, and the
trusted ``setup`` and ``test`` (the dataset's), which run here, in the caller's process, with
every function of the candidate replaced by a proxy: a call sends its arguments to the
sandbox and gets back the return value as plain data (None, bool, int, float, complex, str,
bytes, list, tuple, dict, set, frozenset; see :func:`encode`), which this side rebuilds into
objects of exactly those built-in types. So nothing of the test, its expected values or the
canonical solution is ever in the program's memory or filesystem; an object overriding
``__eq__`` cannot come back (only its plain-data copy could, and an object that is not plain
data makes the call fail); exit codes, ``SystemExit``, ``os._exit``, printed text and
monkeypatched builtins in the sandbox change nothing here. Whatever bytes the program
writes to its channel are at most its answer to a call. We chose this over running the test
in a second sandboxed process because the test must compare with values the candidate
never sees and that second process would need them too; the parent is the one place that
holds them anyway. Replies are capped (``MESSAGE_BYTES``, nesting 100) and every wait on
the sandbox is bounded by the run's deadline. Helpers the test uses (``poly``, ``encode_cyclic``) come from the trusted
prompt run here, not from the candidate, and ``random`` in the test is a private, seeded
instance (deterministic verdicts; the caller's global random state is untouched).

``run_untrusted(program)`` without a test reports only whether the program ran to its end
without an exception, as its sandboxed runner says: a hostile program can claim that (it
shares the runner's process), so it is no verdict; use a :class:`Check` for one.
"""

from __future__ import annotations

import ast
import builtins
import glob
import inspect
import json
import logging
import os
import random
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass

log = logging.getLogger(__name__)

MEMORY_BYTES = 1 << 30
"""Default address-space limit of the child (1 GiB)."""
WRITE_BYTES = 32 << 20
"""Size of the private /tmp tmpfs: everything the program can write in total (bubblewrap)."""
FILE_BYTES = 8 << 20
"""Largest file the program can write (RLIMIT_FSIZE)."""
PROCESSES = 32
"""Processes and threads the program's uid may have at once (RLIMIT_NPROC)."""
OPEN_FILES = 256
"""Open file descriptors (RLIMIT_NOFILE)."""
MESSAGE_BYTES = 16 << 20
"""Largest reply the judge reads from the sandbox; a longer one fails the call."""


class SandboxTimeout(Exception):
    """The program ran past its wall-clock time."""


class CandidateError(Exception):
    """A call into the sandboxed candidate raised, returned something that is not plain
    data, or the sandbox went away."""


@dataclass(frozen=True)
class RunResult:
    """How one untrusted program ended."""

    passed: bool
    """With a test: the trusted test ran to its end. Without: the program reported that it
    ran to its end (no verdict on hostile code)."""
    status: str
    """``passed``, ``failed`` (exception, exit, limit hit) or ``timed out``."""
    seconds: float
    """Wall-clock time of the child."""
    pid: int
    """Process id of the sandbox's outermost process (also its session and process group id)."""
    uid: int = -1
    """The unprivileged uid the program ran as (-1: the caller's own, layer ``rlimits``)."""
    detail: str = ""
    """Why it failed: the exception's type, or what the sandbox did."""


@dataclass(frozen=True)
class Check:
    """An untrusted program and the trusted test that judges it from outside the sandbox."""

    code: str
    """Untrusted source (prompt + completion); the only thing that runs in the sandbox."""
    test: str
    """Trusted test source, run in the caller's process; it calls the candidate's functions."""
    setup: str = ""
    """Trusted source run before the test, in the same namespace (the prompt's helpers)."""
    names: tuple[str, ...] | None = None
    """The candidate's functions the test calls; None: every name the test and setup use
    without defining it (other than built-ins and standard-library modules)."""

    def __str__(self) -> str:
        return self.code + "\n" + self.test


# --- plain data across the boundary: the same two functions run in the sandbox and here ---

def encode(value, depth=0):
    """``value`` as JSON-able tagged plain data; TypeError for anything else.

    A subclass of a built-in type (``Counter``, a namedtuple, an ``IntEnum``) goes as a plain
    copy of its base type, read through the base type's own methods: its overrides
    (``__eq__`` included) never cross. The receiver rebuilds exact built-in types."""
    if depth > 100:
        raise TypeError("nested too deeply")
    if value is None:
        return ["N"]
    if type(value) is bool:
        return ["b", value]
    if isinstance(value, int):
        return ["i", int.__format__(value, "x")]
    if isinstance(value, float):
        return ["f", float.__repr__(value)]
    if isinstance(value, complex):
        return ["c", float.__repr__(complex.real.__get__(value)),
                float.__repr__(complex.imag.__get__(value))]
    if isinstance(value, str):
        return ["s", str.__str__(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["y", bytes.hex(bytes(value))]
    if isinstance(value, dict):
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]]
    for base, tag in ((list, "l"), (tuple, "t"), (set, "S"), (frozenset, "F")):
        if isinstance(value, base):
            return [tag, [encode(v, depth + 1) for v in base.__iter__(value)]]
    raise TypeError(f"not plain data: {type(value).__name__}")


def decode(node, depth=0):
    """The exact built-in value of tagged plain data from ``encode``; ValueError if malformed."""
    if depth > 100 or type(node) is not list or not node or type(node[0]) is not str:
        raise ValueError("malformed plain data")
    tag, rest = node[0], node[1:]
    if tag == "N" and not rest:
        return None
    if len(rest) == 1:
        (v,) = rest
        if tag == "b" and type(v) is bool:
            return True if v else False
        if tag == "i" and type(v) is str and len(v) < 100_000:
            return int(v, 16)
        if tag == "f" and type(v) is str and len(v) < 64:
            return float(v)
        if tag == "s" and type(v) is str:
            return str(v)
        if tag == "y" and type(v) is str:
            return bytes.fromhex(v)
        if tag in ("l", "t", "S", "F") and type(v) is list:
            items = [decode(x, depth + 1) for x in v]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and type(v) is list:
            out = {}
            for pair in v:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("malformed plain data")
                out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
            return out
    if tag == "c" and len(rest) == 2 and all(type(v) is str and len(v) < 64 for v in rest):
        return complex(float(rest[0]), float(rest[1]))
    raise ValueError("malformed plain data")


# --- the runner: trusted code that starts in the sandbox before the untrusted code ---

_RUNNER = r'''
import json, os, resource, sys
chan_in = os.fdopen(os.dup(0), "rb")
chan_out = os.fdopen(os.dup(1), "wb")
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
os.close(null)
cfg = json.loads(chan_in.readline())
if cfg["seccomp"]:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    bpf = bytes.fromhex(cfg["seccomp"])
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = Prog(len(bpf) // 8, ctypes.addressof(buf))
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):
        os._exit(3)  # PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP: never run unfiltered by surprise
    del libc, Prog, buf, prog, bpf
for name, value in cfg["limits"]:
    resource.setrlimit(getattr(resource, name), tuple(value))
ENCODE_DECODE
def send(message):
    chan_out.write(json.dumps(message).encode() + b"\n")
    chan_out.flush()
ns = {"__name__": "__sandbox__"}
code = cfg.pop("code")
del cfg
try:
    exec(compile(code, "<program>", "exec"), ns)
except BaseException as e:
    send(["error", type(e).__name__])
    os._exit(1)
send(["ready"])
while True:
    line = chan_in.readline()
    if not line:
        os._exit(0)
    try:
        name, args, kwargs = json.loads(line)
        value = ns[name](*decode(args), **decode(kwargs))
        reply = ["ok", encode(value)]
    except BaseException as e:
        reply = ["raise", type(e).__name__]
    send(reply)
'''.replace("ENCODE_DECODE", inspect.getsource(encode) + inspect.getsource(decode))


# --- the isolation layers ---

_SYSCALLS_REFUSED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root",
    "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "syslog", "acct", "quotactl", "name_to_handle_at",
    "open_by_handle_at", "kcmp", "fanotify_init", "lookup_dcookie", "move_mount", "fsopen",
    "fsmount", "open_tree")
_CLONE_NEW = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
              0x40000000)  # CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET


def _seccomp_bpf() -> str:
    """The syscall filter as hex BPF (empty when libseccomp is not available)."""
    try:
        import errno

        import pyseccomp as sc

        f = sc.SyscallFilter(sc.ALLOW)
        for name in _SYSCALLS_REFUSED:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except Exception:  # a syscall this architecture lacks
                pass
        f.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, 1))  # only AF_UNIX
        for flag in _CLONE_NEW:
            f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags unreadable: libc falls back to clone
        with tempfile.TemporaryFile() as fh:
            f.export_bpf(fh)
            fh.seek(0)
            return fh.read().hex()
    except Exception as e:  # pyseccomp or libseccomp.so.2 missing
        log.warning("sandbox: no syscall filter (%s: %s)", type(e).__name__, e)
        return ""


@dataclass(frozen=True)
class _Layer:
    name: str
    python: str
    seccomp: str
    binds: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()


_LAYER: _Layer | None = None
_LAYER_LOCK = threading.Lock()


def _python() -> tuple[str, str]:
    """The real interpreter and the installation folder that holds its standard library."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _fresh_uid() -> int:
    return (1 << 20) + secrets.randbelow(1 << 28)


def _setpriv(uid: int) -> list[str]:
    return [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}",
            "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _bwrap(layer: _Layer) -> list[str]:
    cmd = [shutil.which("bwrap") or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv",
           "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        if os.path.islink(f"/{top}"):
            cmd += ["--symlink", os.readlink(f"/{top}"), f"/{top}"]
        elif os.path.isdir(f"/{top}"):
            cmd += ["--ro-bind", f"/{top}", f"/{top}"]
    for path in layer.binds:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            cmd += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
        cmd += ["--ro-bind", path, path]
    for path in layer.hidden:
        cmd += ["--tmpfs", path]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(WRITE_BYTES), "--perms", "1777",
            "--tmpfs", "/tmp", "--chdir", "/tmp", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
            "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    return cmd + [a for k, v in _env("/tmp").items() for a in ("--setenv", k, v)] + ["--"]


def _env(home: str) -> dict:
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _command(layer: _Layer, uid: int, home: str) -> list[str]:
    python = [layer.python, "-I", "-S", "-B", "-c", _RUNNER]
    if layer.name == "bubblewrap":
        return _bwrap(layer) + _setpriv(uid) + python
    if layer.name == "setpriv":
        return _setpriv(uid) + python
    return python


def _probe(layer: _Layer) -> bool:
    try:
        result = _run(layer, "import math", None, timeout=20.0, memory_bytes=MEMORY_BYTES)
    except OSError as e:  # bwrap or setpriv not found
        log.info("sandbox: layer %s refused here (%s)", layer.name, e)
        return False
    if not result.passed:
        log.info("sandbox: layer %s refused here (%s)", layer.name, result.detail or result.status)
    return result.passed


def isolation() -> str:
    """The isolation layer every program runs under in this process (chosen, logged once)."""
    return _layer().name


def _layer() -> _Layer:
    global _LAYER
    with _LAYER_LOCK:
        if _LAYER is not None:
            return _LAYER
        python, prefix = _python()
        seccomp = _seccomp_bpf()
        hidden = tuple(sorted(
            p for root in {prefix, "/usr", "/usr/local"}
            for p in glob.glob(f"{root}/lib/python3*/*-packages")
            if os.path.isdir(p)))
        binds = () if prefix == "/usr" or prefix.startswith("/usr/") else (prefix,)
        demanded = os.environ.get("LFL_RAY_SANDBOX", "")
        if demanded not in ("", "bubblewrap", "setpriv", "rlimits"):
            raise ValueError(f"LFL_RAY_SANDBOX={demanded!r}: use bubblewrap, setpriv or rlimits")
        if demanded:
            mounts = (binds, hidden) if demanded == "bubblewrap" else ()
            layer = _Layer(demanded, python, seccomp, *mounts)
            if not _probe(layer):
                raise RuntimeError(f"sandbox: LFL_RAY_SANDBOX={demanded} does not work here")
            _LAYER = layer
            log.info("sandbox: isolation layer %r (demanded by LFL_RAY_SANDBOX)", demanded)
            return _LAYER
        candidates = []
        if os.geteuid() == 0 and shutil.which("bwrap") and shutil.which("setpriv"):
            candidates.append(_Layer("bubblewrap", python, seccomp, binds, hidden))
        else:
            log.warning("sandbox: bubblewrap not usable (%s); `apt-get install bubblewrap`",
                        "not root" if os.geteuid() else "bwrap or setpriv missing")
        if os.geteuid() == 0 and shutil.which("setpriv"):
            candidates.append(_Layer("setpriv", python, seccomp))
        for layer in candidates:
            if _probe(layer):
                _LAYER = layer
                break
        else:
            _LAYER = _Layer("rlimits", python, seccomp)
        message = {"bubblewrap": "bubblewrap namespaces (pid, net, ipc, uts, mount: read-only "
                                 "/usr and Python, private /tmp) + fresh uid via setpriv",
                   "setpriv": "fresh uid via setpriv, NO namespaces: the filesystem and "
                              "process list stay visible to the program",
                   "rlimits": "NO OS isolation: the program runs as this user"}[_LAYER.name]
        extra = " + seccomp" if seccomp else ", no seccomp filter"
        (log.info if _LAYER.name == "bubblewrap" else log.warning)(
            "sandbox: isolation layer %r: %s%s + rlimits", _LAYER.name, message, extra)
        return _LAYER


# --- one run ---

class _Channel:
    """Line-delimited JSON to and from the sandboxed runner, every wait bounded by a deadline."""

    def __init__(self, proc: subprocess.Popen, deadline: float):
        self.proc, self.deadline, self.buffer = proc, deadline, b""
        self.wfd, self.rfd = proc.stdin.fileno(), proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)

    def _wait(self, fd: int, write: bool) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SandboxTimeout()
        r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], left)
        if not (r or w):
            raise SandboxTimeout()

    def send(self, message) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            self._wait(self.wfd, write=True)
            try:
                data = data[os.write(self.wfd, data):]
            except BlockingIOError:
                continue
            except OSError as e:  # the sandbox is gone
                raise CandidateError(f"sandbox closed its input ({e})") from None

    def recv(self):
        while b"\n" not in self.buffer:
            if len(self.buffer) > MESSAGE_BYTES:
                raise CandidateError("reply too long")
            self._wait(self.rfd, write=False)
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise CandidateError("sandbox exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise CandidateError("malformed reply") from None
        if type(message) is not list or not message or type(message[0]) is not str:
            raise CandidateError("malformed reply")
        return message


def _proxy(channel: _Channel, name: str):
    def call(*args, **kwargs):
        channel.send([name, encode(list(args)), encode(kwargs)])
        reply = channel.recv()
        if reply[0] == "ok" and len(reply) == 2:
            try:
                return decode(reply[1])
            except (ValueError, TypeError, RecursionError, OverflowError):
                raise CandidateError(f"{name} returned malformed plain data") from None
        raise CandidateError(f"{name} failed: {str(reply[1:2])[:200]}")

    call.__name__ = call.__qualname__ = name
    return call


def _seeded_random(seed: int) -> types.ModuleType:
    """A ``random`` module whose functions use one private generator."""
    module, inst = types.ModuleType("random"), random.Random(seed)
    for name in dir(random):
        attr = getattr(random, name)
        setattr(module, name, getattr(inst, name) if getattr(attr, "__self__", None)
                is random._inst else attr)
    return module


def free_names(*sources: str) -> tuple[str, ...]:
    """Names the sources use without defining them (nor built-ins nor stdlib modules)."""
    used, bound = [], set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name):
                (used.append if isinstance(node.ctx, ast.Load) else bound.add)(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
    skip = bound | set(dir(builtins)) | set(sys.stdlib_module_names)
    return tuple(dict.fromkeys(n for n in used if n not in skip))


def _judge(channel: _Channel, check: Check) -> None:
    """Run the trusted setup and test here against proxies of the candidate's functions."""
    names = check.names if check.names is not None else free_names(check.setup, check.test)
    rng = _seeded_random(0)

    def guarded_import(name, *args, **kwargs):
        return rng if name == "random" else builtins.__import__(name, *args, **kwargs)

    ns = {"__name__": "__judge__",
          "__builtins__": {**builtins.__dict__, "__import__": guarded_import}}
    free = set(free_names(check.setup, check.test)) - set(names)
    for name in free & set(sys.stdlib_module_names):
        ns[name] = guarded_import(name)
    exec(compile(check.setup, "<setup>", "exec"), ns)
    for name in names:
        ns[name] = _proxy(channel, name)
    exec(compile(check.test, "<test>", "exec"), ns)


def _run(layer: _Layer, code: str, check: Check | None, *, timeout: float,
         memory_bytes: int) -> RunResult:
    uid = _fresh_uid() if layer.name != "rlimits" else -1
    home = tempfile.mkdtemp(prefix="lfl_sandbox_") if layer.name != "bubblewrap" else "/tmp"
    if uid >= 0 and home != "/tmp":
        os.chown(home, uid, uid)
    cpu = max(1, int(timeout) + 1)
    limits = [("RLIMIT_AS", (memory_bytes, memory_bytes)),
              ("RLIMIT_DATA", (memory_bytes, memory_bytes)),
              ("RLIMIT_CPU", (cpu, cpu + 1)), ("RLIMIT_FSIZE", (FILE_BYTES, FILE_BYTES)),
              ("RLIMIT_CORE", (0, 0)), ("RLIMIT_NOFILE", (OPEN_FILES, OPEN_FILES))]
    if uid >= 0:
        limits.append(("RLIMIT_NPROC", (PROCESSES, PROCESSES)))
    start = time.monotonic()
    proc = subprocess.Popen(_command(layer, uid, home), cwd=home, env=_env(home),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    status, detail = "failed", ""
    try:
        channel = _Channel(proc, start + timeout)
        channel.send({"code": code, "limits": limits, "seccomp": layer.seccomp})
        first = channel.recv()
        if first != ["ready"]:
            detail = (f"program raised {str(first[1:2])[:100]}" if first[0] == "error"
                      else "no ready")
        elif check is None:
            status = "passed"
        else:
            _judge(channel, check)
            status = "passed"
    except SandboxTimeout:
        status, detail = "timed out", ""
    except CandidateError as e:
        detail = str(e)
    except Exception as e:  # the trusted test failed: an assertion, or a candidate's bad value
        detail = f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        _stop(proc, uid)
        if home != "/tmp":
            shutil.rmtree(home, ignore_errors=True)
    return RunResult(status == "passed", status, time.monotonic() - start, proc.pid, uid, detail)


def run_untrusted(program: str | Check, *, timeout: float = 10.0,
                  memory_bytes: int = MEMORY_BYTES) -> RunResult:
    """Run ``program`` in the sandbox. A :class:`Check` passes only if its trusted test,
    run here against the sandboxed code, passes; a bare string passes if it ran to its end
    without an exception (the program's own claim: no verdict on hostile code)."""
    if isinstance(program, Check):
        return _run(_layer(), program.code, program, timeout=timeout, memory_bytes=memory_bytes)
    return _run(_layer(), program, None, timeout=timeout, memory_bytes=memory_bytes)


def _stop(proc: subprocess.Popen, uid: int) -> None:
    """End the run and return only once none of its processes is left.

    End of input lets the runner exit; otherwise every process of the run's uid is killed.
    In the bubblewrap layer the runner's exit ends its PID namespace, and bwrap exits only
    after the kernel has reaped every process in it, so waiting for bwrap is waiting for all.
    """
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        if uid >= 0:
            _kill_uid(uid)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc.pid)
    proc.wait()
    if uid >= 0:
        _kill_uid(uid)  # setpriv layer: forked processes may have left the process group


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a fresh uid that only this run used)."""
    for _ in range(100):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
            except OSError:
                pass
        if not found:
            return
