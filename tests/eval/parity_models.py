"""For the lm-eval parity tests: models and tokenizers saved as folders both harnesses load,
and lm-eval's CLI run on one of them.

- ``llama_style_tokenizer``: a tiny tokenizer laid out like Llama-2's (SentencePiece-style
  ``▁`` BPE with byte fallback, ``<unk>``/``<s>``/``</s>``) that adds ``<s>`` by default, so
  the BOS rule is exercised; its 1,024 pieces are learned from the eval texts themselves.
- ``model_folder``: lfl-ray's tiny random Llama (``TINY_LLAMA_CONFIG``) with a tokenizer,
  saved with ``save_pretrained`` so lm-eval loads it as ``pretrained=<folder>``.
- ``run_lm_eval``: lm-eval's CLI in a subprocess, hub and datasets offline, ``--samples``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VOCAB = 1024
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}


def _training_texts() -> list[str]:
    from lfl_ray.eval import arc, hellaswag, winogrande

    texts = []
    for item in hellaswag.load_items()[:400] + arc.load_items()[:400] + winogrande.load_items()[:400]:
        texts.extend(item.contexts[:1] + item.continuations)
    return texts


def llama_style_tokenizer(folder: Path):
    """A tiny Llama-style tokenizer that prepends BOS by default, saved to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, LlamaTokenizer

    special = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    bpe.train_from_iterator(_training_texts(), trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=special, show_progress=False))
    learned = json.loads(bpe.to_str())["model"]
    tokenizer = LlamaTokenizer(vocab=learned["vocab"],
                               merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                       for m in learned["merges"]],
                               add_bos_token=True)
    tokenizer.save_pretrained(str(folder))
    loaded = AutoTokenizer.from_pretrained(str(folder))
    assert loaded("a b")["input_ids"][0] == loaded.bos_token_id  # BOS by default
    return loaded


def model_folder(folder: Path, tokenizer, model=None) -> Path:
    """``model`` (default: lfl-ray's tiny random Llama sized to ``tokenizer``), saved with
    ``tokenizer`` into ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lfl_ray.models import TINY_LLAMA_CONFIG

    if model is None:
        config = dict(TINY_LLAMA_CONFIG, vocab_size=len(tokenizer),
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return Path(folder)


def run_lm_eval(folder: Path, tasks_dir: Path, samples: dict, out: Path,
                dtype: str) -> tuple[dict, dict]:
    """lm-eval's CLI on ``folder``: its results and, per task, its logged samples by doc id."""
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
           "--model_args", f"pretrained={folder}", f"dtype={dtype}",
           "--device", "cpu", "--batch_size", "8", "--tasks", *samples,
           "--include_path", str(tasks_dir), "--samples", json.dumps(samples),
           "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, env=os.environ | OFFLINE, capture_output=True, text=True,
                          timeout=3000)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (results_file,) = out.glob("*/results_*.json")
    logged = {}
    for task in samples:
        (path,) = out.glob(f"*/samples_{task}_*.jsonl")
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        logged[task] = {s["doc_id"]: s for s in lines}
    return json.loads(results_file.read_text())["results"], logged
