"""Driver-side Tune callbacks: the results table, MLflow child runs, and a progress bar.

They see exactly what each trial reported to Ray, so the table and MLflow hold the same numbers Ray does. Ray
pickles them with the experiment, and ``study resume`` (``Tuner.restore``) runs the unpickled copies: their
caches start empty and are refilled from disk and MLflow, so a resumed trial neither writes an epoch twice nor
opens a second child run.
"""
from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import DatasetInput
from ray.tune import Callback
from tqdm.auto import tqdm

from study import metric_keys
from study.config import short
from study.data import ID_VAL
from study.results import (SEARCH, WISE_TABLE_DIR, read_trial_rows, rows_from_report, trial_columns,
                           wise_rows_from_report, write_trial_rows)
from study.tracking import StudyTracker
from study.tune.spaces import SEARCH_METRIC, TrialSpec


def outcome_of(trial, failed: bool = False) -> str:
    if failed:
        return "failed"
    return "diverged" if (trial.last_result or {}).get("diverged") else "finished"


class ResultsTableCallback(Callback):
    """The study's Parquet table: one part file per trial, rewritten as the trial reports."""

    def __init__(self, study_dir: Path, study_name: str, seeds: tuple[int, ...], stage: str = SEARCH):
        self.study_dir, self.study_name, self.seeds, self.stage = study_dir, study_name, seeds, stage
        self._rows: dict[str, list[dict]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_rows": {}}

    def _trial_rows(self, trial) -> list[dict]:
        if trial.trial_id not in self._rows:  # a restored study continues the rows already on disk
            self._rows[trial.trial_id] = read_trial_rows(self.study_dir, trial.trial_id)
        return self._rows[trial.trial_id]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" not in result or result.get("diverged"):
            return
        report = metric_keys.metrics(result) | {"epoch": result["epoch"]}
        identity = self._identity(trial)
        rows = [row for row in self._trial_rows(trial) if row["epoch"] != result["epoch"]]
        rows += rows_from_report(report, **identity)
        self._rows[trial.trial_id] = rows
        write_trial_rows(self.study_dir, trial.trial_id, rows, "running")
        if wise := wise_rows_from_report(report, **identity):
            write_trial_rows(self.study_dir, trial.trial_id, wise, None, table=WISE_TABLE_DIR)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, outcome_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed")

    def _finish(self, trial, outcome: str):
        rows = self._trial_rows(trial)
        if not rows:  # a trial that failed before its first report still gets a row, so it is counted
            rows = [{**trial_columns(**self._identity(trial)), "epoch": -1, "split": "none",
                     "accuracy": float("nan"), "loss": float("nan")}]
        write_trial_rows(self.study_dir, trial.trial_id, rows, outcome)

    def _identity(self, trial) -> dict:
        spec = TrialSpec.of(trial.config, self.seeds)
        return dict(study=self.study_name, trial_id=trial.trial_id, stage=self.stage, method=spec.method,
                    seed=spec.seed, hparams=spec.hparams)


class MlflowTrialsCallback(Callback):
    """One MLflow child run per trial, named by its method, searched hyper-parameters and seed: hyper-parameters as
    params, the study's splits as dataset inputs (``inputs``), per-epoch metrics with step = epoch, what a trial
    chooses once (LP-FT's ``lp_l2``) as a tag. ``searched``: per method, the hyper-parameters its name shows
    (``StudyConfig.searched``)."""

    def __init__(self, tracker: StudyTracker, seeds: tuple[int, ...], searched: dict[str, tuple[str, ...]],
                 inputs: list[DatasetInput]):
        self.tracker, self.seeds, self.searched, self.inputs = tracker, seeds, searched, inputs
        self._runs: dict[str, str] = {}
        self._last_epoch: dict[str, int] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_runs": {}, "_last_epoch": {}}

    def _run_id(self, trial) -> str:
        if trial.trial_id not in self._runs:
            spec = TrialSpec.of(trial.config, self.seeds)
            params = {"method": spec.method, "seed": spec.seed, **spec.hparams}
            shown = ", ".join(f"{name}={short(spec.hparams[name])}" for name in self.searched.get(spec.method, ())
                              if name in spec.hparams)
            run_id = self.tracker.child_run(trial.trial_id, f"{spec.method} {shown} seed{spec.seed}", params,
                                            {"method": spec.method, "seed": str(spec.seed)}, self.inputs)
            self._runs[trial.trial_id] = run_id
            self._last_epoch[trial.trial_id] = self.tracker.last_logged_epoch(run_id)
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" not in result or result.get("diverged"):
            return
        run_id, epoch = self._run_id(trial), int(result["epoch"])
        if epoch > self._last_epoch[trial.trial_id]:  # a trial resumed from an older checkpoint repeats epochs
            metrics = metric_keys.metrics(result, scalars_only=True)
            tags = {"device": result["device"]} if "device" in result else {}
            if (chosen := metric_keys.key(metric_keys.EXTRA, "lp_l2")) in metrics:
                tags["lp_l2"] = short(metrics.pop(chosen))
            self.tracker.log_epoch(run_id, metrics, epoch, int(time.time() * 1000), tags=tags)
            self._last_epoch[trial.trial_id] = epoch

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.tracker.end_child(self._run_id(trial), outcome_of(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tracker.end_child(self._run_id(trial), "failed")


class ProgressCallback(Callback):
    """A progress bar over trials, with the running best ID-val accuracy (or squared error) per method."""

    def __init__(self, total: int, seeds: tuple[int, ...], enabled: bool = True):
        self.total, self.seeds, self.enabled = total, seeds, enabled
        self.bar = None
        self.best: dict[str, float] = {}  # the best search score (``SEARCH_METRIC``) so far, per method
        self.squared_error = False  # a regression study: the score is minus the squared error

    def __getstate__(self) -> dict:
        return {**self.__dict__, "bar": None, "best": {}}

    def setup(self, **info):
        self.bar = tqdm(total=self.total, desc="trials", unit="trial", disable=not self.enabled)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if SEARCH_METRIC in result and result.get("epoch", 0) > 0:
            method = TrialSpec.of(trial.config, self.seeds).method
            self.best[method] = max(self.best.get(method, result[SEARCH_METRIC]), result[SEARCH_METRIC])
            self.squared_error = metric_keys.key(ID_VAL, "mse") in result
            self._refresh(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._refresh(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._refresh(trials)

    def _refresh(self, trials):
        """Counts come from Ray's trial list, so a resumed study's bar starts where the last one stopped."""
        done = [trial for trial in trials if trial.status in ("TERMINATED", "ERROR")]
        self.bar.n = len(done)
        running = sum(trial.status == "RUNNING" for trial in trials)
        counts = {"diverged": sum(outcome_of(t) == "diverged" for t in done if t.status == "TERMINATED"),
                  "failed": sum(t.status == "ERROR" for t in done)}
        best = " ".join(f"{m}={-v:.3g} mse" if self.squared_error else f"{m}={v:.1f}"
                        for m, v in sorted(self.best.items()))
        extra = " ".join(f"{k}={v}" for k, v in counts.items() if v)
        self.bar.set_postfix_str(f"running={running} best id_val: {best} {extra}".strip())

    def on_experiment_end(self, trials, **info):
        self._refresh(trials)
        self.bar.close()
