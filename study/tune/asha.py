"""ASHA early stopping with one set of rungs per method.

Ray's ``ASHAScheduler`` ranks every trial of a study at each rung, whatever its method. In a study that compares
methods this is unfair: a method that starts slowly (LoRA, whose adapters start at zero) is cut at the first rung
by a faster one (FT), however good it would become. Here each method gets its own ``ASHAScheduler``: a trial is
only ever stopped for doing worse than trials of its own method at the same epoch.
"""
from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from study.tune.spaces import TrialSpec


class PerMethodASHA(FIFOScheduler):
    """One ``ASHAScheduler(**asha)`` per method, created when the method's first trial arrives."""

    def __init__(self, seeds: tuple[int, ...], **asha):
        super().__init__()
        self.seeds, self.asha = seeds, asha
        self.by_method: dict[str, ASHAScheduler] = {}

    def _of(self, trial) -> ASHAScheduler:
        method = TrialSpec.of(trial.config, self.seeds).method
        if method not in self.by_method:
            self.by_method[method] = ASHAScheduler(**self.asha)
        return self.by_method[method]

    def on_trial_add(self, tune_controller, trial):
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict):
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self._of(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "ASHA per method: " + "; ".join(f"{method}: {asha.debug_string()}"
                                               for method, asha in self.by_method.items())
