"""Presets: the paper's protocol on GPUs, a CPU study that fits 2 cores, a 2-minute smoke.

``paper`` follows shared/PAPER.md (Biderman et al. 2024): Llama-2-7B, hub data, LionW with
betas (0.9, 0.95), clipping 1.0, the paper's sequence lengths and global batches, LoRA r in
{16, 64, 256} with alpha = 2r on attention/mlp/all, learning-rate grids around the paper's
best, evaluation milestones at 1, 2, 4, 8, 16 epochs (IFT) or 0.25 ... 20B tokens (CPT).
``cpu`` is sized from the field notes' calibration: full-vs-LoRA differences on SmolLM2
rise above their paired standard errors only after ~40 steps of 4 x 256 tokens, so every
trial runs 60 steps, evaluated at steps 30 and 60.
"""

from __future__ import annotations

from dataclasses import replace

from lfl_ray.sweep.spec import Budget, FullGrid, LoraGrid, Resources, SweepSpec

PRESETS = ("paper", "cpu", "smoke")

# The paper's per-regime settings (PAPER.md table).
PAPER_SETTINGS = {
    "code_ift": dict(seq_len=4096, global_batch=192, steps_per_unit=193, units=(1, 2, 4, 8, 16),
                     full_lrs=(1e-5, 2e-5, 5e-5, 1e-4), lora_lrs=(5e-5, 1e-4, 2e-4, 5e-4),
                     schedule="cosine", weight_decay=0.0, learning="humaneval_pass1"),
    "math_ift": dict(seq_len=1024, global_batch=768, steps_per_unit=131, units=(1, 2, 4, 8, 16),
                     full_lrs=(5e-6, 1e-5, 2e-5), lora_lrs=(5e-5, 1e-4, 2e-4, 5e-4),
                     schedule="cosine", weight_decay=0.0, learning="gsm8k_strict"),
    # CPT milestones in billions of tokens; a step is 192 x 4096 = 786,432 tokens.
    "code_cpt": dict(seq_len=4096, global_batch=192, steps_per_unit=1272, units=(0.25, 0.5, 1, 2, 4, 8, 16, 20),
                     full_lrs=(5e-6, 1e-5, 2e-5), lora_lrs=(1e-5, 4e-5, 1e-4),
                     schedule="inverse_sqrt", weight_decay=1e-6, learning="humaneval_pass1"),
    "math_cpt": dict(seq_len=4096, global_batch=192, steps_per_unit=1272, units=(0.25, 0.5, 1, 2, 4, 8, 16, 20),
                     full_lrs=(5e-6, 1e-5, 2e-5), lora_lrs=(1e-5, 4e-5, 1e-4),
                     schedule="inverse_sqrt", weight_decay=0.0, learning="gsm8k_strict"),
}


def _eval_spec(**kwargs):
    from lfl_ray.eval.spec import EvalSpec

    return EvalSpec(**kwargs)


def paper(regime: str, name: str | None = None) -> SweepSpec:
    """The paper's grids and budgets on a GPU cluster (32 GPUs, DeepSpeed ZeRO-3)."""
    s = PAPER_SETTINGS[regime]
    milestones = tuple(int(round(u * s["steps_per_unit"])) for u in s["units"])
    code = regime.startswith("code")
    suites = (("humaneval",) if code else ("gsm8k",)) + ("heldout_loss", "general_loss", "drift",
                                                         "hellaswag", "arc_challenge", "winogrande")
    if code:
        suites += ("diversity",)
    return SweepSpec(
        name=name or f"paper-{regime}", regime=regime, model="meta-llama/Llama-2-7b-hf", data_source="hub",
        full=(FullGrid(lrs=s["full_lrs"], weight_decays=(s["weight_decay"],)),),
        lora=(LoraGrid(ranks=(16, 64, 256), lrs=s["lora_lrs"], targets=("attention", "mlp", "all"),
                       weight_decays=(s["weight_decay"],)),),
        budget=Budget(steps=milestones[-1], seq_len=s["seq_len"], micro_batch_size=2 if s["seq_len"] == 4096 else 8,
                      global_batch_size=s["global_batch"], milestones=milestones,
                      warmup_steps=max(1, milestones[-1] // 10) if s["schedule"] == "cosine" else 1000,
                      schedule=s["schedule"], cooldown_steps=0 if s["schedule"] == "cosine" else 5086),
        eval=_eval_spec(suites=suites, learning_metric=s["learning"], forgetting_metric="mc_mean",
                        batch_size=32, max_new_tokens=512),
        heldout_blocks=256, general_blocks=256, optimizer="lion", scheduler="none",
        resources=Resources(num_workers=32, cpus_per_worker=8, use_gpu=True, backend="deepspeed", zero_stage=3,
                            max_concurrent=1, max_failures=3),
    )


def cpu(regime: str, name: str | None = None) -> SweepSpec:
    """SmolLM2-135M-Instruct, offline data, 6 trials of 60 steps x 4 x 256 tokens (measured: 48-50 min on
    2 quiet cores from an empty eval cache; training 34 min, 12 milestone evals of 39-57 s):
    full FT at two learning rates; LoRA r=16 all-linear at two learning rates; LoRA r=64 all-linear
    and LoRA r=16 attention-only at the LoRA rate the field notes calibrated (1e-3)."""
    cpt = regime.endswith("cpt")
    return SweepSpec(
        name=name or f"cpu-{regime}", regime=regime, model="smollm2-135m-instruct", data_source="offline",
        max_train_blocks=600, heldout_blocks=32, general_blocks=32,
        full=(FullGrid(lrs=(3e-5, 1e-4)),),
        lora=(LoraGrid(ranks=(16,), lrs=(3e-4, 1e-3), targets=("all",)),
              LoraGrid(ranks=(64,), lrs=(1e-3,), targets=("all",)),
              LoraGrid(ranks=(16,), lrs=(1e-3,), targets=("attention",))),
        budget=Budget(steps=60, seq_len=256, micro_batch_size=2, global_batch_size=4, milestones=(30, 60),
                      warmup_steps=5, schedule="inverse_sqrt" if cpt else "cosine", cooldown_steps=10 if cpt else 0),
        eval=_eval_spec(suites=("heldout_loss", "general_loss", "drift"), learning_metric="heldout_loss",
                        forgetting_metric="general_loss", batch_size=8),
        resources=Resources(num_workers=2, cpus_per_worker=0.99, max_concurrent=1, max_failures=1),
    )


def smoke(regime: str, name: str | None = None) -> SweepSpec:
    """The tiny random model, a few trials, about two minutes: full FT, LoRA, and a LoRA trial at a
    useless learning rate that ASHA stops at the first milestone."""
    return SweepSpec(
        name=name or f"smoke-{regime}", regime=regime, model="tiny-llama", data_source="offline",
        max_train_blocks=160, heldout_blocks=12, general_blocks=12,
        full=(FullGrid(lrs=(2e-3,)),),
        lora=(LoraGrid(ranks=(8,), lrs=(5e-3,), targets=("all",)),
              LoraGrid(ranks=(8,), lrs=(1e-7,), targets=("attention",))),
        budget=Budget(steps=8, seq_len=256, micro_batch_size=4, global_batch_size=4, milestones=(4, 8),
                      warmup_steps=1),
        eval=_eval_spec(suites=("heldout_loss", "general_loss", "drift"), learning_metric="heldout_loss",
                        forgetting_metric="general_loss", batch_size=8),
        scheduler="asha",
        resources=Resources(num_workers=1, cpus_per_worker=1.0, max_concurrent=1, max_failures=0),
    )


def build(regime: str, preset: str, name: str | None = None) -> SweepSpec:
    from lfl_ray.errors import require_choice

    require_choice("--preset", preset, PRESETS)
    return {"paper": paper, "cpu": cpu, "smoke": smoke}[preset](regime, name)


def regularization(regime: str, preset: str, name: str | None = None) -> SweepSpec:
    """LoRA vs full FT vs full FT + weight decay vs full FT + dropout vs LoRA + HiddenKey, matched budgets.

    The paper's claim is that LoRA regularizes more than the usual regularizers; HiddenKey
    (Wang et al. 2024) is the dropout recipe proposed for LoRA. Every family runs on the same
    data, budget and evals as the base preset.
    """
    from lfl_ray.errors import require_choice
    from lfl_ray.regularization.hiddenkey import HiddenKeyConfig

    require_choice("--preset", preset, PRESETS)
    base = build(regime, preset, name or f"{preset}-regularization-{regime}")
    full_lr = {"paper": PAPER_SETTINGS[regime]["full_lrs"][len(PAPER_SETTINGS[regime]["full_lrs"]) // 2],
               "cpu": 1e-4, "smoke": 2e-3}[preset]
    lora_lr = {"paper": PAPER_SETTINGS[regime]["lora_lrs"][1], "cpu": 1e-3, "smoke": 5e-3}[preset]
    rank = 16 if preset != "smoke" else 8
    decays = (0.0, 1e-4, 1e-3, 1e-2, 1e-1) if preset == "paper" else (0.0, 0.1)
    hiddenkey = HiddenKeyConfig(key_dropout=0.1, hidden_dropout=0.1, kl_weight=1.0)
    return replace(
        base, scheduler="none",
        full=(FullGrid(lrs=(full_lr,), weight_decays=decays),
              FullGrid(lrs=(full_lr,), attention_dropouts=(0.1,), hidden_dropouts=(0.1,))),
        lora=(LoraGrid(ranks=(rank,), lrs=(lora_lr,), targets=("all",), hiddenkey=(None, hiddenkey)),),
    )
