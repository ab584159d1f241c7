"""One trial as a Ray Train job: a TorchTrainer around ``train_loop_per_worker``.

``build_trainer`` is what the Tune trainable of a sweep fits; a standalone trial (tests,
benchmarks) is ``build_trainer(...).fit()`` once Ray is up (``lfl_ray.ray_runtime.init_ray``).
Re-running a trial with the same name and storage path resumes it from its latest
checkpoint (Ray Train V2 restores its checkpoint manager from storage).
"""

from __future__ import annotations

from pathlib import Path

from lfl_ray.train.config import TrialConfig
from lfl_ray.train.loop import train_loop_per_worker


def build_trainer(cfg: TrialConfig, data, *, name: str, storage_path: str, evaluator=None,
                  base=None, logger=None, callbacks=(), max_failures: int = 0, stop_key: str | None = None):
    """A ready-to-fit TorchTrainer for ``cfg`` (validated first, before any Ray work)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from lfl_ray.train.process_group import trial_torch_config

    cfg.validate()
    if "://" not in storage_path:
        storage_path = str(Path(storage_path).expanduser().resolve())
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": cfg, "data": data, "evaluator": evaluator, "base": base,
                           "logger": logger, "stop_key": stop_key},
        # Ray's TorchConfig, but on a local (loopback) cluster torch's store listens on 127.0.0.1 only.
        torch_config=trial_torch_config(cfg.resources.use_gpu, timeout_s=3600),
        scaling_config=ScalingConfig(num_workers=cfg.resources.num_workers, use_gpu=cfg.resources.use_gpu,
                                     resources_per_worker={"CPU": cfg.resources.cpus_per_worker}),
        run_config=RunConfig(
            name=name, storage_path=storage_path, callbacks=list(callbacks),
            # controller_failure_limit=0: a broken controller stops instead of hanging.
            failure_config=FailureConfig(max_failures=max_failures, controller_failure_limit=0),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
