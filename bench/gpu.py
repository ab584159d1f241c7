"""GPU benchmarks: MFU of full FT and LoRA with DeepSpeed ZeRO-3 on a >= 1B model, and vLLM
multi-LoRA evaluation throughput vs Hugging Face generate. Exits cleanly (status 0) with a
message where no CUDA device is visible.

Runs offline: the model is a randomly initialized Llama of ``--size`` (default 1.1B, TinyLlama's
shape; throughput does not depend on the weights) saved to a temporary folder and loaded
through lfl-ray's model loader; the tokenizer is SmolLM2's (``lfl-ray assets fetch``), so the
model's vocabulary is 49,152. Training goes through the real trial path
(``lfl_ray.train.trial.build_trainer``, backend deepspeed, ZeRO-3, bf16, one worker per GPU);
MFU = tokens/s x 6N (full) or 4N (LoRA: no weight gradients for frozen weights; 6N-based
figure shown too) / (GPUs x the GPU's dense bf16 peak).

    .venv/bin/python bench/gpu.py                      # both parts
    .venv/bin/python bench/gpu.py --skip-vllm --steps 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_method, median, save_results, synthetic_blocks, table  # noqa: E402
from probe import ProbeLogger, ship_by_value  # noqa: E402

BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}
"""Dense bf16 tensor-core peaks by GPU name fragment (SXM figures for H100/H200/A100)."""
SIZES = {
    "1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4),
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
               num_key_value_heads=8),
}


def gpu_peak(override: float | None) -> tuple[str, float]:
    import torch

    name = torch.cuda.get_device_name(0)
    if override:
        return name, override * 1e12
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if key in name:
            return name, tflops * 1e12
    raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops (its dense bf16 peak)")


def random_llama(size: str, folder: Path) -> tuple[str, int]:
    """Save a random Llama of ``size`` with SmolLM2's vocabulary; returns (folder, parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152, max_position_embeddings=4096, tie_word_embeddings=False,
                         torch_dtype="bfloat16", **SIZES[size])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    try:
        from lfl_ray.models import load_tokenizer

        load_tokenizer("smollm2-135m-instruct").save_pretrained(folder)
    except Exception as exc:  # vLLM needs a tokenizer; training does not
        print(f"[gpu] no SmolLM2 tokenizer ({exc}); run `lfl-ray assets fetch` for the vLLM part")
    del model
    torch.cuda.empty_cache()
    return str(folder), n


def train_mfu(folder: str, n_params: int, method: str, args, peak: float, storage: str) -> dict:
    import torch

    from lfl_ray.train.config import Budget, Resources, TrialConfig
    from lfl_ray.train.trial import build_trainer

    gpus = torch.cuda.device_count()
    cfg = TrialConfig(model=folder, method=bench_method(method), report_every=args.report_every,
                      budget=Budget(steps=args.steps, milestones=(), seq_len=args.seq_len,
                                    micro_batch_size=args.micro_batch, global_batch_size=args.micro_batch * gpus,
                                    schedule="constant", warmup_steps=0),
                      resources=Resources(num_workers=gpus, use_gpu=True, cpus_per_worker=args.cpus_per_worker,
                                          backend="deepspeed", zero_stage=3),
                      save_checkpoints=False, activation_checkpointing=args.activation_checkpointing)
    blocks = synthetic_blocks(cfg.budget.global_batch_size * (args.steps + 1), args.seq_len)
    probe = ProbeLogger(tempfile.mktemp(prefix="lfl-probe-", suffix=".jsonl"))
    start = time.time()
    result = build_trainer(cfg, blocks, name=f"gpu-{method}-{time.time_ns()}", storage_path=storage,
                           logger=probe).fit()
    if result.error is not None:
        raise result.error
    reports = [r for r in probe.records() if "tokens_per_s" in r["metrics"]]
    rate = median([r["metrics"]["tokens_per_s"] for r in reports[1:]] or [reports[0]["metrics"]["tokens_per_s"]])
    model_flops = (6.0 if method == "full" else 4.0) * n_params
    return {"part": "train", "method": method, "gpus": gpus, "tokens_per_s": rate,
            "mfu": rate * model_flops / (gpus * peak), "mfu_6n": rate * 6.0 * n_params / (gpus * peak),
            "fit_s": time.time() - start}


def vllm_vs_hf(folder: str, args) -> list[dict]:
    """Generation tokens/s over ``--adapters`` LoRA adapters: HF generate per adapter vs one vLLM engine."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lfl_ray.eval.backend import HFBackend, VLLMBackend, vllm_available
    from lfl_ray.models import load_tokenizer

    if not vllm_available():
        print("[gpu] vLLM is not installed (pip install -e '.[gpu]'): skipping the multi-LoRA comparison")
        return []
    tokenizer = load_tokenizer(folder)
    adapters = []
    for i in range(args.adapters):
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        peft_model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.01)
        path = Path(folder) / f"adapter-{i}"
        peft_model.save_pretrained(path)
        adapters.append(str(path))
        del base, peft_model
    prompts = [f"Question {i}: write a function that returns the {i}-th prime number.\n" for i in range(args.prompts)]
    rows = []
    start, generated = time.perf_counter(), 0
    for path in adapters:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16),
                                          path).cuda().eval()
        texts = HFBackend(model, tokenizer, batch_size=args.prompts).generate(prompts, max_new_tokens=args.new_tokens,
                                                                               desc="")
        generated += sum(len(tokenizer(t[0], add_special_tokens=False)["input_ids"]) for t in texts)
        del model
        torch.cuda.empty_cache()
    hf_s = time.perf_counter() - start
    rows.append({"part": "eval", "engine": "HF generate (reload per adapter)", "adapters": len(adapters),
                 "seconds": hf_s, "tokens_per_s": generated / hf_s})
    engine_start = time.perf_counter()
    backend = VLLMBackend(folder, max_lora_rank=16)
    load_s = time.perf_counter() - engine_start
    start, generated = time.perf_counter(), 0
    for path in adapters:
        texts = backend.with_adapter(path).generate(prompts, max_new_tokens=args.new_tokens, desc="")
        generated += sum(len(tokenizer(t[0], add_special_tokens=False)["input_ids"]) for t in texts)
    vllm_s = time.perf_counter() - start
    rows.append({"part": "eval", "engine": f"vLLM multi-LoRA (engine start {load_s:.0f} s not counted)",
                 "adapters": len(adapters), "seconds": vllm_s, "tokens_per_s": generated / vllm_s})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="1.1b")
    parser.add_argument("--methods", nargs="+", choices=("full", "lora"), default=["full", "lora"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--report-every", type=int, default=3)
    parser.add_argument("--micro-batch", type=int, default=8, help="rows per GPU per step")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--cpus-per-worker", type=float, default=4.0)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device visible (torch.cuda.is_available() is False); nothing to measure. "
              "Run it on a GPU machine: it measures DeepSpeed ZeRO-3 MFU and vLLM multi-LoRA throughput.")
        return 0
    from lfl_ray.ray_runtime import init_ray

    name, peak = gpu_peak(args.peak_tflops)
    ship_by_value()
    init_ray(use_gpu=True, log=lambda *_: None)
    work = Path(tempfile.mkdtemp(prefix="lfl-bench-gpu-"))
    folder, n_params = random_llama(args.size, work / "model")
    print(f"[gpu] {torch.cuda.device_count()} x {name}, bf16 peak {peak / 1e12:.0f} TFLOP/s; model {n_params / 1e9:.2f}B")
    rows = []
    if not args.skip_train:
        for method in args.methods:
            rows.append(train_mfu(folder, n_params, method, args, peak, str(work / "ray")))
        print(table(rows, [("method", "method", ""), ("gpus", "GPUs", ""), ("tokens_per_s", "tok/s", ".0f"),
                           ("mfu", "MFU (6N full / 4N LoRA)", ".1%"), ("mfu_6n", "MFU (6N)", ".1%")]))
    if not args.skip_vllm:
        eval_rows = vllm_vs_hf(folder, args)
        if eval_rows:
            print(table(eval_rows, [("engine", "engine", ""), ("adapters", "adapters", ""),
                                    ("seconds", "s", ".1f"), ("tokens_per_s", "tok/s", ".0f")]))
        rows += eval_rows
    save_results("gpu", rows, vars(args), {"gpu": name, "n_params": n_params})
    return 0


if __name__ == "__main__":
    sys.exit(main())
