"""What to evaluate at a milestone: suites, per-suite item limits, and the primary pair."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lfl_ray.errors import ConfigError, require_choice, require_positive

LM_EVAL_PREFIX = "lm_eval:"
"""``lm_eval:<task>`` names any lm-evaluation-harness task (``catalog/lm_eval.py``)."""
CUSTOM_KINDS = ("generation", "multiple_choice")


@dataclass(frozen=True)
class CustomEval:
    """A study's own learning eval read from a JSON-lines file (``catalog/user.py``).

    List its ``name`` in ``eval.suites`` too; its metric (``<name>_score`` for generation,
    ``<name>_acc_norm``/``<name>_acc`` for multiple choice) can be ``eval.learning_metric``."""

    name: str
    """Suite name and metric prefix: letters, digits and '_', not a built-in suite's name."""
    path: str
    """The .jsonl file (read on the driver; relative paths from the working directory)."""
    kind: str = "generation"
    """``generation`` (prompt -> answer scored against a reference) or ``multiple_choice``."""
    prompt_field: str = "prompt"
    """generation: the field holding the prompt."""
    reference_field: str = "reference"
    """generation: the field holding the reference answer."""
    scorer: str = "exact_match"
    """generation: ``exact_match``, ``contains``, or a .py file defining
    ``score(completion, reference) -> float`` in [0, 1], run in the code sandbox."""
    max_new_tokens: int = 128
    """generation: answer length budget (greedy)."""
    stop: tuple[str, ...] = ()
    """generation: strings that end an answer (besides EOS), e.g. ``["\\n\\n"]``."""
    question_field: str = "question"
    """multiple_choice: the field holding the question."""
    choices_field: str = "choices"
    """multiple_choice: the field holding the list of choice texts."""
    answer_field: str = "answer"
    """multiple_choice: the field holding the right choice (its index or its text)."""

    def validate(self, where: str) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", self.name):
            raise ConfigError(f"{where}.name", self.name,
                              "must start with a letter and hold only letters, digits and '_'")
        from lfl_ray.eval.registry import suite_names

        if self.name in suite_names():
            raise ConfigError(f"{where}.name", self.name, "is a built-in suite's name; choose another")
        require_choice(f"{where}.kind", self.kind, CUSTOM_KINDS)
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(f"{where}.path", self.path, "must be the path of a .jsonl file")
        require_positive(f"{where}.max_new_tokens", self.max_new_tokens, integer=True)
        if isinstance(self.stop, str) or not all(isinstance(s, str) and s for s in self.stop):
            raise ConfigError(f"{where}.stop", self.stop, "must be a list of non-empty strings")


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation run at every milestone of a trial (and once on the base model)."""

    suites: tuple[str, ...] = ("heldout_loss", "general_loss")
    """Suites to run: any registered suite (``lfl-ray eval suites`` lists them: heldout_loss,
    general_loss, drift, heldout_drift, humaneval, mbpp, gsm8k, hellaswag, arc_challenge,
    winogrande, diversity), ``lm_eval:<task>``, or the name of one of ``custom``."""
    limits: dict = field(default_factory=dict)
    """Per-suite item limit; a suite absent or mapped to None evaluates all its items. The
    subset is drawn with ``seed`` and is the same for the base model and every trial."""
    seed: int = 0
    """Seed of the fixed item subsets (and of sampling for pass@k and diversity)."""
    learning_metric: str = "heldout_loss"
    """Primary learning metric: a score of one of the suites (heldout_loss, humaneval_pass1,
    gsm8k_strict, a custom eval's ``<name>_score``, ...)."""
    forgetting_metric: str = "general_loss"
    """Primary forgetting metric: general_loss, drift_kl, or mc_mean (mean accuracy of
    HellaSwag, ARC-Challenge and WinoGrande, as in the paper), or another suite's score."""
    custom: tuple[CustomEval, ...] = ()
    """The study's own evals from JSON-lines files (see ``CustomEval``)."""
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
        from lfl_ray.eval.registry import get_suite, primary_metrics, suite_names

        if isinstance(self.custom, (str, dict)) or not all(isinstance(c, CustomEval) for c in self.custom):
            raise ConfigError("eval.custom", self.custom, "must be a list of custom evals")
        for i, custom in enumerate(self.custom):
            custom.validate(f"eval.custom[{i}]")
        names = [c.name for c in self.custom]
        if len(set(names)) != len(names):
            raise ConfigError("eval.custom", names, "must not repeat a name")
        if not isinstance(self.suites, tuple) or not self.suites:
            raise ConfigError("eval.suites", self.suites, "must be a non-empty list of suite names")
        for suite in self.suites:
            get_suite(suite, self)  # a ConfigError listing the suites for an unknown name
        if len(set(self.suites)) != len(self.suites):
            raise ConfigError("eval.suites", self.suites, "must not repeat a suite")
        for i, name in enumerate(names):
            if name not in self.suites:
                raise ConfigError(f"eval.custom[{i}].name", name,
                                  f"is declared but not run; add it to eval.suites {list(self.suites)}")
        if not isinstance(self.limits, dict):
            raise ConfigError("eval.limits", self.limits, "must be a mapping suite -> int or None")
        for suite, limit in self.limits.items():
            try:
                get_suite(suite, self)
            except ConfigError as e:
                raise ConfigError("eval.limits", suite, e.allowed, hint=e.hint) from None
            if limit is not None:
                require_positive(f"eval.limits.{suite}", limit, integer=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("eval.seed", self.seed, "must be an integer >= 0")
        known = primary_metrics(tuple(dict.fromkeys(suite_names() + self.suites)), spec=self)
        require_choice("eval.learning_metric", self.learning_metric, known)
        require_choice("eval.forgetting_metric", self.forgetting_metric, known)
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
        from lfl_ray.eval.registry import aggregates, primary_metrics

        produced = primary_metrics(self.suites, spec=self)
        for field_name, metric in (("eval.learning_metric", self.learning_metric),
                                   ("eval.forgetting_metric", self.forgetting_metric)):
            aggregate = aggregates().get(metric)
            needed = list(aggregate.parts) if aggregate else []
            missing = [s for s in needed if s not in self.suites]
            if missing:
                raise ConfigError(field_name, metric,
                                  f"needs suites {missing} in eval.suites {list(self.suites)}")
            if aggregate is None and metric not in produced:
                raise ConfigError(field_name, metric,
                                  f"is not produced by eval.suites {list(self.suites)}; "
                                  f"they produce {sorted(produced)}")

    def limit(self, suite: str) -> int | None:
        """The item limit of ``suite`` (None: all items)."""
        return self.limits.get(suite)

    def to_json(self) -> dict:
        from lfl_ray import config_io

        return config_io.to_dict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EvalSpec":
        from lfl_ray import config_io

        return config_io.from_dict(cls, data)
