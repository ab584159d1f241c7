"""jemalloc for lfl-ray's Ray workers on CPU: the LoRA memory saving, kept.

With glibc's malloc a LoRA trial peaks almost as high as full finetuning (SmolLM2, batch
4 x 256: 4.0 vs 4.5 GB, 0.90x): glibc raises its mmap threshold as large blocks are freed,
so activation-sized tensors land in the heap, whose freed chunks stay resident. With
jemalloc preloaded the same runs peak at 2.4 vs 3.7 GB (0.65x) and step no slower
(``bench/memory.py --allocator``, bench/RESULTS.md). So a local CPU cluster started by
lfl-ray preloads jemalloc into its Ray worker processes (not the driver, not Ray's own
daemons) when the library is found: ``lfl-ray assets fetch`` extracts Debian's
``libjemalloc2`` into the cache where apt is available, else a system copy is used.
``LFL_RAY_ALLOCATOR=glibc`` turns it off.

Where glibc's malloc stays, ``limit_heap_retention`` (opt-in: ``LFL_RAY_MMAP_THRESHOLD``)
is the other way to lower a CPU worker's peak, at a cost in system time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lfl_ray.errors import require_choice

ALLOCATOR_ENV = "LFL_RAY_ALLOCATOR"
ALLOCATORS = ("jemalloc", "glibc")
LIBRARY = "libjemalloc.so.2"
SYSTEM_PATHS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                "/usr/local/lib")


def cached_path() -> Path:
    from lfl_ray.cache import cache_dir

    return cache_dir() / "assets" / "jemalloc" / LIBRARY


def find_jemalloc() -> Path | None:
    """The jemalloc shared library: lfl-ray's cached copy, else a system one, else None."""
    for candidate in (cached_path(), *(Path(d) / LIBRARY for d in SYSTEM_PATHS)):
        if candidate.is_file():
            return candidate
    return None


def chosen() -> str:
    """The allocator asked for in ``LFL_RAY_ALLOCATOR`` (default jemalloc); ConfigError if unknown."""
    value = os.environ.get(ALLOCATOR_ENV, "jemalloc")
    require_choice(ALLOCATOR_ENV, value, ALLOCATORS)
    return value


def worker_env(log=print) -> dict[str, str]:
    """Environment for Ray worker processes: LD_PRELOAD of jemalloc, or nothing (glibc)."""
    if chosen() == "glibc":
        return {}
    path = find_jemalloc()
    if path is None:
        log("[ray] jemalloc not found (run `lfl-ray assets fetch` where apt is available); CPU "
            "workers use glibc malloc, whose LoRA trials peak near full FT's memory")
        return {}
    return preload_env(path)


def preload_env(path: Path) -> dict[str, str]:
    """LD_PRELOAD of ``path`` ahead of whatever the user preloads already."""
    return {"LD_PRELOAD": " ".join(p for p in (str(path), os.environ.get("LD_PRELOAD", "")) if p)}


def fetch(*, force: bool = False, log=print) -> Path | None:
    """Extract Debian's libjemalloc2 into the cache (apt-get download + dpkg-deb, no root
    needed); a system copy or None where apt is unavailable. Never raises: glibc works."""
    target = cached_path()
    if target.is_file() and not force:
        log(f"[assets] jemalloc: cached at {target}")
        return target
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        found = find_jemalloc()
        log(f"[assets] jemalloc: no apt here; {'using ' + str(found) if found else 'workers keep glibc malloc'}")
        return found
    with tempfile.TemporaryDirectory(prefix="lfl-jemalloc-") as tmp:
        got = subprocess.run(["apt-get", "download", "libjemalloc2"], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("libjemalloc2_*.deb"))
        if got.returncode != 0 or not debs:
            log(f"[assets] jemalloc: apt-get download failed ({got.stderr.strip()[-200:]}); "
                "workers keep glibc malloc")
            return find_jemalloc()
        unpacked = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "root")],
                                  capture_output=True, text=True)
        libs = sorted((Path(tmp) / "root").rglob(LIBRARY)) if unpacked.returncode == 0 else []
        if not libs:
            log(f"[assets] jemalloc: no {LIBRARY} unpacked from {debs[0].name} "
                f"({unpacked.stderr.strip()[-200:]}); workers keep glibc malloc")
            return find_jemalloc()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(libs[0].resolve(), partial)
        os.replace(partial, target)
        log(f"[assets] jemalloc: {debs[0].name} -> {target}")
    return target


MMAP_THRESHOLD_ENV = "LFL_RAY_MMAP_THRESHOLD"
"""Bytes; when set, CPU workers call ``limit_heap_retention`` with it (off by default)."""


def limit_heap_retention(threshold: int = 128 * 1024) -> bool:
    """Make glibc give large freed blocks back to the OS at once (lower peak RSS on CPU).

    glibc serves blocks below its mmap threshold from the heap and raises that threshold (up
    to 32 MB) whenever a large mmapped block is freed, so activation-sized tensors soon live
    in the heap, where freed ones stay resident. On SmolLM2 (batch 4 x 256) that kept 1.3-1.7
    GB resident under LoRA: peak RSS 3.6-4.1 GB -> 2.3 GB with a fixed 128 KB threshold, but
    every large tensor then costs fresh page faults: about +3 CPU-s of system time per step
    (bench/memory.py, RESULTS.md), so it is opt-in via LFL_RAY_MMAP_THRESHOLD for runs that
    are short of memory. Returns False where glibc's mallopt is not available.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False
