"""The training set-up outside Ray (one worker): phases in order, a step that trains, resume
from its own checkpoint; fault injection."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from lfl_ray.methods import Full, Lora
from lfl_ray.train.checkpoint import OPTIM_FILE
from lfl_ray.train.config import Budget, Resources, FaultInjection, TrialConfig
from lfl_ray.train.faults import inject_fault
from lfl_ray.train.setup import build_training, worker_threads
from lfl_ray.train.stop import stop_requested


def _cfg(method=Lora(rank=4), **kw):
    return TrialConfig(method=method, lr=1e-2, budget=Budget(steps=6, milestones=(), warmup_steps=2,
                       micro_batch_size=2, global_batch_size=2), resources=Resources(num_workers=1, cpus_per_worker=1.0),
                       **kw).validate()


def _step(run, index):
    run.model.train()
    loss_sum, count = run.loss_of(index)
    run.backward(loss_sum / count, last=True)
    run.optimizer_step()
    return float(loss_sum.detach() / count)


def test_phases_run_in_order_and_a_step_trains_only_the_adapters(pattern_blocks):
    phases = []
    run = build_training(_cfg(), pattern_blocks, mark=phases.append)
    assert phases == ["model_load", "method", "data", "loss_optim", "restore", "wrap"]
    assert run.start_step == 0 and not run.resumed and run.engine is None and run.forward is run.loss_module
    assert torch.get_num_threads() == worker_threads(run.cfg) == 1
    assert run.tokens_per_step == 2 * pattern_blocks.seq_len
    frozen = {n: p.detach().clone() for n, p in run.model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in run.model.named_parameters() if p.requires_grad}
    assert run.lr == pytest.approx(1e-2 * 0.5)  # warmup: the first of 2 steps
    assert math.isfinite(_step(run, 0))
    assert all(torch.equal(p, frozen[n]) for n, p in run.model.named_parameters() if not p.requires_grad)
    assert any(not torch.equal(p, trained[n]) for n, p in run.model.named_parameters() if p.requires_grad)
    assert run.lr == pytest.approx(1e-2)  # warmup: the second of 2 steps
    run.close()


def test_resume_from_its_own_checkpoint_restores_weights_step_and_schedule(pattern_blocks):
    from ray.train import Checkpoint

    cfg = _cfg(method=Full())
    run = build_training(cfg, pattern_blocks)
    for index in range(3):
        _step(run, index)
    folder = run.save(3, 3 * run.tokens_per_step)
    again = build_training(cfg, pattern_blocks, checkpoint=Checkpoint.from_directory(folder))
    assert again.resumed and (again.start_step, again.start_tokens) == (3, 3 * run.tokens_per_step)
    assert again.lr == pytest.approx(run.lr)
    for (name, a), b in zip(run.model.named_parameters(), again.model.parameters()):
        assert torch.equal(a, b), name
    assert build_training(cfg.with_(save_checkpoints=False), pattern_blocks).save(1, 1) is None
    # Mid-budget checkpoints keep the optimizer for an exact resume; the last step's does not.
    last = run.save(cfg.budget.steps, cfg.budget.steps * run.tokens_per_step)
    assert (Path(folder) / OPTIM_FILE).is_file() and not (Path(last) / OPTIM_FILE).exists()
    shutil.rmtree(Path(folder).parent)
    shutil.rmtree(Path(last).parent)


def test_faults_fire_at_their_step_and_only_on_a_fresh_start():
    loss = torch.tensor(1.0)
    assert inject_fault(None, 3, 0, False, loss) is loss
    assert math.isnan(float(inject_fault(FaultInjection(nan_at_step=3), 3, 0, False, loss)))
    assert inject_fault(FaultInjection(nan_at_step=3), 2, 0, False, loss) is loss
    assert inject_fault(FaultInjection(nan_at_step=3), 3, 0, True, loss) is loss  # resumed: not again
    with pytest.raises(RuntimeError, match="injected fault"):
        inject_fault(FaultInjection(raise_at_step=1), 1, 0, False, loss)
    with pytest.raises(RuntimeError):  # a real allocator failure
        inject_fault(FaultInjection(oom_at_step=2), 2, 0, False, loss)


def test_a_standalone_trial_is_never_asked_to_stop():
    assert stop_requested(None) is False and stop_requested("") is False
