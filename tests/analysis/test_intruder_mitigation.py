"""Intruder mitigation on the tiny model: strength 1.0 changes nothing, 0.0 removes the intruders."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from eval_blocks import random_blocks  # noqa: E402
from synthetic_sweep import make_lora_checkpoint  # noqa: E402

from lfl_ray.analysis import intruder_mitigation as im  # noqa: E402
from lfl_ray.analysis.intruders import IntruderSettings, find_intruders  # noqa: E402
from lfl_ray.analysis.runs import Trial  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec
    from lfl_ray.models import load_model, load_tokenizer

    checkpoint = make_lora_checkpoint(tmp_path_factory.mktemp("lora") / "adapter", rank=4)
    evaluator = MilestoneEvaluator(EvalSpec(suites=("heldout_loss", "general_loss")), "tiny-llama",
                                   random_blocks(8, 32, 0, 4), random_blocks(8, 32, 1, 4))
    model, tokenizer = load_model("tiny-llama"), load_tokenizer("tiny-llama")
    trial = Trial("run", "lora-a", "lora-r4-all", "code_ift", "FINISHED",
                  {"method": "lora", "rank": "4", "model": "tiny-llama",
                   "learning_metric": "heldout_loss", "forgetting_metric": "general_loss"}, (),
                  checkpoint=checkpoint)
    return trial, evaluator, model, tokenizer, evaluator(model, tokenizer)


def test_strength_one_changes_nothing_and_zero_removes_the_intruders(tiny):
    trial, evaluator, model, tokenizer, base = tiny
    logged = {}
    result = im.mitigate_trial(trial, lambda m: evaluator(m, tokenizer), evaluator.compare, base,
                               strengths=(1.0, 0.0), base_model=model,
                               log_eval=lambda path, obj: logged.setdefault(path, obj))
    same, removed = result.points
    assert result.intruders_before > 10
    assert same.intruders == result.intruders_before
    assert abs(same.delta_learning) < 1e-5 and abs(same.delta_forgetting) < 1e-5
    assert same.learning == pytest.approx(result.learning, abs=1e-5)
    assert removed.intruders <= result.intruders_before // 5
    assert set(logged) == {im.mitigation_eval_artifact(1.0), im.mitigation_eval_artifact(0.0)}


def test_scaling_shrinks_each_intruder_direction_by_its_strength(tiny):
    from peft import PeftModel

    from lfl_ray.analysis.weights import lora_pairs

    trial, _, model, _, _ = tiny
    settings = IntruderSettings()
    peft_model = PeftModel.from_pretrained(model, trial.checkpoint)
    before = {p.name: (p.tuned, find_intruders(p.base, p.tuned, settings))
              for p in lora_pairs(peft_model, unload=False)}
    try:
        for strength, bound in ((1.0, 1e-4), (0.0, 0.1)):
            im.scale_intruders(peft_model, strength, settings)
            left = []
            for pair in lora_pairs(peft_model, unload=False):
                tuned, found = before[pair.name]
                u, s, _ = torch.linalg.svd(tuned, full_matrices=False)
                left += [float((u[:, j] @ pair.tuned).norm() / s[j]) for j in found.indices]
            mean = sum(left) / len(left)
            # 1.0: every intruder as it was; 0.0: under 10% left on average (peft re-fits the
            # adapter at rank r, which leaves a remainder).
            assert abs(mean - strength) < bound
    finally:
        peft_model.unload()


def test_summary_rows_and_sentence_read_back(tiny, tmp_path):
    trial, evaluator, model, tokenizer, base = tiny
    entry = im.mitigate_trial(trial, lambda m: evaluator(m, tokenizer), evaluator.compare, base,
                              strengths=(0.75,), base_model=model)
    from dataclasses import asdict

    summary = {"settings": asdict(IntruderSettings()), "strengths": [0.75],
               "trials": [asdict(entry)], "skipped": [], "evaluations": 2, "seconds": 1.0}
    im.write_summary(summary, tmp_path)
    again = im.read_summary(None, tmp_path)
    (row,) = im.rows(again)
    assert row[2] == "0.75" and " -> " in row[3]
    assert "scaling intruders by 0.75" in im.sentence(*im.points_from_summary(again)[0])
