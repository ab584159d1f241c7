"""Sweeps: a SweepSpec searched by Ray Tune, one Ray Train job per trial, logged to MLflow."""

from lfl_ray.sweep.spec import Budget, FullGrid, LoraGrid, Resources, SweepSpec

__all__ = ["Budget", "FullGrid", "LoraGrid", "Resources", "SweepSpec"]
