"""Driver-side Tune callbacks: the results table, MLflow child runs, and a progress bar.

They see exactly what each trial reported to Ray, so the table and MLflow hold the same numbers Ray does.
"""
from __future__ import annotations

import time
from pathlib import Path

from ray.tune import Callback
from tqdm.auto import tqdm

from study.results import read_trial_rows, rows_from_report, write_trial_rows
from study.tracking import StudyTracker
from study.tune.spaces import TrialSpec


def metrics_of(result: dict) -> dict[str, float]:
    """The study's own metrics in a Ray result: per-split, train and extra values (keys with a '/')."""
    return {key: value for key, value in result.items() if "/" in key and isinstance(value, (int, float))}


def outcome_of(trial, failed: bool = False) -> str:
    if failed:
        return "failed"
    return "diverged" if (trial.last_result or {}).get("diverged") else "finished"


class ResultsTableCallback(Callback):
    def __init__(self, study_dir: Path, study_name: str, seeds: tuple[int, ...]):
        self.study_dir, self.study_name, self.seeds = study_dir, study_name, seeds
        self._rows: dict[str, list[dict]] = {}

    def _trial_rows(self, trial) -> list[dict]:
        if trial.trial_id not in self._rows:  # a restored study continues the rows already on disk
            self._rows[trial.trial_id] = read_trial_rows(self.study_dir, trial.trial_id)
        return self._rows[trial.trial_id]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" not in result or result.get("diverged"):
            return
        spec = TrialSpec.of(trial.config, self.seeds)
        rows = [row for row in self._trial_rows(trial) if row["epoch"] != result["epoch"]]
        rows += rows_from_report(metrics_of(result) | {"epoch": result["epoch"]}, study=self.study_name,
                                 trial_id=trial.trial_id, method=spec.method, seed=spec.seed, hparams=spec.hparams)
        self._rows[trial.trial_id] = rows
        write_trial_rows(self.study_dir, trial.trial_id, rows, "running")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, outcome_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed")

    def _finish(self, trial, outcome: str):
        rows = self._trial_rows(trial)
        if not rows:  # a trial that failed before its first report still gets a row, so it is counted
            spec = TrialSpec.of(trial.config, self.seeds)
            rows = [{"study": self.study_name, "trial_id": trial.trial_id, "method": spec.method,
                     "seed": spec.seed, **spec.hparams, "epoch": -1, "split": "none",
                     "accuracy": float("nan"), "loss": float("nan")}]
        write_trial_rows(self.study_dir, trial.trial_id, rows, outcome)


class MlflowTrialsCallback(Callback):
    """One MLflow child run per trial: hyper-parameters as params, per-epoch metrics with step = epoch."""

    def __init__(self, tracker: StudyTracker, seeds: tuple[int, ...]):
        self.tracker, self.seeds = tracker, seeds
        self._runs: dict[str, str] = {}

    def _run_id(self, trial) -> str:
        if trial.trial_id not in self._runs:
            spec = TrialSpec.of(trial.config, self.seeds)
            params = {"method": spec.method, "seed": spec.seed, **spec.hparams}
            self._runs[trial.trial_id] = self.tracker.child_run(
                trial.trial_id, f"{spec.method}-seed{spec.seed}-{trial.trial_id}", params,
                {"method": spec.method, "seed": str(spec.seed)})
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" in result and not result.get("diverged"):
            self.tracker.log_epoch(self._run_id(trial), metrics_of(result), int(result["epoch"]),
                                   int(time.time() * 1000))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.tracker.end_child(self._run_id(trial), outcome_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tracker.end_child(self._run_id(trial), "failed")


class ProgressCallback(Callback):
    """A progress bar over trials, with the running best ID-val accuracy per method."""

    def __init__(self, total: int, seeds: tuple[int, ...], enabled: bool = True):
        self.seeds = seeds
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled)
        self.best: dict[str, float] = {}
        self.counts = {"diverged": 0, "failed": 0}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "id_val/acc" in result and result.get("epoch", 0) > 0:
            method = TrialSpec.of(trial.config, self.seeds).method
            self.best[method] = max(self.best.get(method, 0.0), result["id_val/acc"])
            self._refresh(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if outcome_of(trial) == "diverged":
            self.counts["diverged"] += 1
        self.bar.update()
        self._refresh(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.counts["failed"] += 1
        self.bar.update()
        self._refresh(trials)

    def _refresh(self, trials):
        running = sum(trial.status == "RUNNING" for trial in trials)
        best = " ".join(f"{m}={v:.1f}" for m, v in sorted(self.best.items()))
        extra = " ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        self.bar.set_postfix_str(f"running={running} best id_val: {best} {extra}".strip())

    def on_experiment_end(self, trials, **info):
        self.bar.close()
