"""What to evaluate at a milestone: suites, per-suite item limits, and the primary pair."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lfl_ray.errors import ConfigError, require_choice, require_positive

LOSS_SUITES = ("heldout_loss", "general_loss", "drift")
GENERATION_SUITES = ("humaneval", "mbpp", "gsm8k", "diversity")
MC_SUITES = ("hellaswag", "arc_challenge", "winogrande")
SUITES = LOSS_SUITES + GENERATION_SUITES + MC_SUITES
LM_EVAL_PREFIX = "lm_eval:"
"""Besides ``SUITES``, ``lm_eval:<task>`` names any lm-evaluation-harness task (harness_suite)."""

# Primary metric -> the suite that produces it.
LEARNING_METRICS = {"heldout_loss": "heldout_loss", "humaneval_pass1": "humaneval",
                    "gsm8k_strict": "gsm8k"}
FORGETTING_METRICS = {"general_loss": "general_loss", "mc_mean": MC_SUITES}


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation run at every milestone of a trial (and once on the base model)."""

    suites: tuple[str, ...] = ("heldout_loss", "general_loss")
    """Suites to run, any of ``SUITES``: heldout_loss, general_loss, drift, humaneval, mbpp,
    gsm8k, hellaswag, arc_challenge, winogrande, diversity."""
    limits: dict = field(default_factory=dict)
    """Per-suite item limit; a suite absent or mapped to None evaluates all its items. The
    subset is drawn with ``seed`` and is the same for the base model and every trial."""
    seed: int = 0
    """Seed of the fixed item subsets (and of sampling for pass@k and diversity)."""
    learning_metric: str = "heldout_loss"
    """Primary learning metric: heldout_loss, humaneval_pass1 or gsm8k_strict."""
    forgetting_metric: str = "general_loss"
    """Primary forgetting metric: general_loss, or mc_mean (mean accuracy of HellaSwag,
    ARC-Challenge and WinoGrande, as in the paper)."""
    batch_size: int = 8
    """Sequences per forward pass (scoring) or per generate call."""
    max_new_tokens: int = 512
    """Generation budget for HumanEval, MBPP and GSM8K."""
    chat: bool | None = None
    """Prompt with the chat template; None: use it if the tokenizer has one."""
    code_samples: int = 1
    """HumanEval/MBPP completions per problem: 1 = greedy pass@1; n > 1 samples n at
    ``code_temperature`` and reports the unbiased pass@1 (and pass@k for k in 1, 10, 100 <= n)."""
    code_temperature: float = 0.8
    """Sampling temperature when ``code_samples`` > 1."""
    add_bos_token: bool | None = None
    """Prepend the BOS token to scored and generated text: None (lm-eval's rule) leaves it to
    the tokenizer's default (a Llama tokenizer adds ``<s>``, SmolLM2's adds nothing)."""

    def __post_init__(self):
        # Accept lists from YAML/JSON; the dataclass stays hashable in spirit.
        if isinstance(self.suites, list):
            object.__setattr__(self, "suites", tuple(self.suites))

    def validate(self) -> "EvalSpec":
        if not isinstance(self.suites, tuple) or not self.suites:
            raise ConfigError("eval.suites", self.suites, f"must be a non-empty list of {list(SUITES)}")
        for suite in self.suites:
            if not str(suite).startswith(LM_EVAL_PREFIX):
                require_choice("eval.suites", suite, SUITES)
        if len(set(self.suites)) != len(self.suites):
            raise ConfigError("eval.suites", self.suites, "must not repeat a suite")
        if not isinstance(self.limits, dict):
            raise ConfigError("eval.limits", self.limits, "must be a mapping suite -> int or None")
        for suite, limit in self.limits.items():
            if not str(suite).startswith(LM_EVAL_PREFIX):
                require_choice("eval.limits", suite, SUITES)
            if limit is not None:
                require_positive(f"eval.limits.{suite}", limit, integer=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("eval.seed", self.seed, "must be an integer >= 0")
        require_choice("eval.learning_metric", self.learning_metric, LEARNING_METRICS)
        require_choice("eval.forgetting_metric", self.forgetting_metric, FORGETTING_METRICS)
        require_positive("eval.batch_size", self.batch_size, integer=True)
        require_positive("eval.max_new_tokens", self.max_new_tokens, integer=True)
        require_positive("eval.code_samples", self.code_samples, integer=True)
        require_positive("eval.code_temperature", self.code_temperature)
        if self.chat not in (None, True, False):
            raise ConfigError("eval.chat", self.chat, "must be true, false or null (auto)")
        if self.add_bos_token not in (None, True, False):
            raise ConfigError("eval.add_bos_token", self.add_bos_token,
                              "must be true, false or null (the tokenizer's default)")
        return self

    def require_primary_suites(self) -> None:
        """Fail unless the suites produce the learning and forgetting metrics."""
        needed = LEARNING_METRICS[self.learning_metric]
        if needed not in self.suites:
            raise ConfigError("eval.learning_metric", self.learning_metric,
                              f"needs suite {needed!r} in eval.suites {list(self.suites)}")
        needed = FORGETTING_METRICS[self.forgetting_metric]
        for suite in (needed,) if isinstance(needed, str) else needed:
            if suite not in self.suites:
                raise ConfigError("eval.forgetting_metric", self.forgetting_metric,
                                  f"needs suite {suite!r} in eval.suites {list(self.suites)}")

    def limit(self, suite: str) -> int | None:
        """The item limit of ``suite`` (None: all items)."""
        return self.limits.get(suite)

    def to_json(self) -> dict:
        data = asdict(self)
        data["suites"] = list(self.suites)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "EvalSpec":
        data = dict(data)
        data["suites"] = tuple(data.get("suites", cls.suites))
        return cls(**data)
