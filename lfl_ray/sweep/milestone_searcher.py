"""A Ray Tune Searcher wrapper that sees only milestone results (imported when a sampler runs)."""

from __future__ import annotations

from ray.tune.search import Searcher


class MilestoneResults(Searcher):
    """A Searcher that is told only the results that carry its metrics (the milestones).

    Trials report training metrics between milestones; Optuna needs its metric in every
    result it is given, and a trial's last result may lack it (a scheduler stop between
    milestones), so the last milestone result stands in for it at completion.
    """

    def __init__(self, searcher):
        self.searcher = searcher
        self._last: dict[str, dict] = {}
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def _metrics(self) -> list[str]:
        metric = self.searcher.metric
        return list(metric) if isinstance(metric, (list, tuple)) else [metric]

    def _carries(self, result) -> bool:
        return bool(result) and all(result.get(m) is not None for m in self._metrics())

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._carries(result):
            self._last[trial_id] = result
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if not self._carries(result):
            result = self._last.get(trial_id)
        self._last.pop(trial_id, None)
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict:
        # Tune saves wrappers (objects with a ``searcher``) by their own state and the base
        # searcher separately, as it does for its ConcurrencyLimiter.
        return {"last": dict(self._last)}

    def set_state(self, state: dict) -> None:
        self._last = dict(state.get("last", {}))

    def save(self, checkpoint_path: str):
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        self.searcher.restore(checkpoint_path)
