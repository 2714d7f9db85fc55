"""Driver-side Tune callbacks: the results table, MLflow child runs, and a progress bar.

They see exactly what each trial reported to Ray, so the table and MLflow hold the same numbers Ray does. Ray
pickles them with the experiment, and ``study resume`` (``Tuner.restore``) runs the unpickled copies: their
caches start empty and are refilled from disk and MLflow, so a resumed trial neither writes an epoch twice nor
opens a second child run.
"""
from __future__ import annotations

import sys
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
from study.sync import RETRY_S, catch_up, clear_pending, mark_pending, pending, run_name
from study.tracking import StudyTracker
from study.tune import disk
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
        if "epoch" not in result or result.get("diverged") or disk.guard(self.study_dir):
            return
        report = metric_keys.metrics(result) | {"epoch": result["epoch"]}
        identity = self._identity(trial)
        rows = [row for row in self._trial_rows(trial) if row["epoch"] != result["epoch"]]
        rows += rows_from_report(report, **identity)
        self._rows[trial.trial_id] = rows
        self._write(trial.trial_id, rows, "running")
        if wise := wise_rows_from_report(report, **identity):
            self._write(trial.trial_id, wise, None, table=WISE_TABLE_DIR)

    def _write(self, trial_id: str, rows: list[dict], outcome: str | None, **options) -> None:
        """A part of the table; a disk that is full stops the study (the part as it was stays)."""
        try:
            write_trial_rows(self.study_dir, trial_id, rows, outcome, **options)
        except OSError as error:
            if not disk.is_disk_full(error):
                raise
            disk.stop_for_space(self.study_dir)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, outcome_of(trial))
        _forget_per_metric_statistics(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed")

    def _finish(self, trial, outcome: str):
        rows = self._trial_rows(trial)
        if not rows:  # a trial that failed before its first report still gets a row, so it is counted
            rows = [{**trial_columns(**self._identity(trial)), "epoch": -1, "split": "none",
                     "accuracy": float("nan"), "loss": float("nan")}]
        self._write(trial.trial_id, rows, outcome)
        self._rows.pop(trial.trial_id, None)  # on disk now; a study of 1,000 trials need not hold them all

    def _identity(self, trial) -> dict:
        spec = TrialSpec.of(trial.config, self.seeds)
        return dict(study=self.study_name, trial_id=trial.trial_id, stage=self.stage, method=spec.method,
                    seed=spec.seed, hparams=spec.hparams)


def _forget_per_metric_statistics(trial) -> None:
    """Drop what Tune keeps per metric of a finished trial, though it reports no more: its max, min, mean and last
    value, and two deques to average its last 5 and 10 reports (110 KiB for a trial's 50 metrics, and a share of the
    trial's cached JSON). The search metric's stay (what ``ResultGrid.get_best_result(scope=...)`` reads), as does
    the trial's last result. Never for a trial that failed: ``study resume`` runs it again. (A private structure of
    Tune's, so only if it is there.)"""
    metadata = getattr(trial, "run_metadata", None)
    for name in ("metric_analysis", "metric_n_steps"):
        if isinstance(statistics := getattr(metadata, name, None), dict):
            setattr(metadata, name, {SEARCH_METRIC: statistics[SEARCH_METRIC]} if SEARCH_METRIC in statistics else {})


class MlflowTrialsCallback(Callback):
    """One MLflow child run per trial, named by its method, searched hyper-parameters and seed: hyper-parameters as
    params, the study's splits as dataset inputs (``inputs``), per-epoch metrics with step = epoch, what a trial
    chooses once (LP-FT's ``lp_l2``) as a tag. ``searched``: per method, the hyper-parameters its name shows
    (``StudyConfig.searched``).

    A tracking server that does not answer never stops the study: the trials it could not log are written down
    (``study.sync``), left alone for ``RETRY_S`` seconds at a time, and caught up from the results table when the
    server answers again."""

    def __init__(self, tracker: StudyTracker, seeds: tuple[int, ...], searched: dict[str, tuple[str, ...]],
                 inputs: list[DatasetInput], study_dir: Path):
        self.tracker, self.seeds, self.searched, self.inputs = tracker, seeds, searched, inputs
        self.study_dir = study_dir
        self._runs: dict[str, str] | None = None  # trial id -> child run id, read from MLflow once
        self._last_epoch: dict[str, int] = {}
        self._retry_at = 0.0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_runs": None, "_last_epoch": {}, "_retry_at": 0.0}

    def _run_id(self, trial) -> str:
        if self._runs is None:  # a restored study, or one that caught up, has child runs already
            self._runs = self.tracker.trial_runs()
        if trial.trial_id not in self._last_epoch:
            if (run_id := self._runs.get(trial.trial_id)) is not None:
                self.tracker.reopen_child(run_id)
                self._last_epoch[trial.trial_id] = self.tracker.last_logged_epoch(run_id)
            else:
                spec = TrialSpec.of(trial.config, self.seeds)
                params = {"method": spec.method, "seed": spec.seed, **spec.hparams}
                name = run_name(spec.method, spec.hparams, spec.seed, self.searched.get(spec.method, ()))
                self._runs[trial.trial_id] = self.tracker.new_child(
                    trial.trial_id, name, params, {"method": spec.method, "seed": str(spec.seed)}, self.inputs)
                self._last_epoch[trial.trial_id] = -1
        return self._runs[trial.trial_id]

    def _attempt(self, trial, action) -> None:
        """``action()``, unless the server is being left alone (then the table catches the trial up later); a server
        that does not answer marks the trial pending instead of stopping the study."""
        if not self._caught_up():
            mark_pending(self.study_dir, [trial.trial_id])
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 - MLflow's client raises many kinds for a server that is away
            self._away(error)
            mark_pending(self.study_dir, [trial.trial_id])

    def _caught_up(self) -> bool:
        """True when nothing is pending; else, at most every ``RETRY_S``, try to catch up from the table."""
        if not pending(self.study_dir)["trials"]:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            logged = catch_up(self.tracker, self.study_dir, self.seeds, self.searched, self.inputs)
        except Exception as error:  # noqa: BLE001
            self._away(error)
            return False
        clear_pending(self.study_dir)
        self._runs, self._last_epoch = None, {}  # read again from MLflow, where the catch-up left them
        print(f"MLflow at {self.tracker.uri} answers again: {logged} epoch(s) caught up from the results table",
              file=sys.stderr)
        return True

    def _away(self, error: Exception) -> None:
        if self._retry_at == 0.0:
            reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            print(f"warning: MLflow at {self.tracker.uri} does not answer ({reason}); the study goes on and logs to "
                  f"it when it answers again", file=sys.stderr)
        self._retry_at = time.monotonic() + RETRY_S

    def on_trial_start(self, iteration, trials, trial, **info):
        self._attempt(trial, lambda: self._run_id(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "epoch" not in result or result.get("diverged"):
            return
        self._attempt(trial, lambda: self._log(trial, result))

    def _log(self, trial, result) -> None:
        run_id, epoch = self._run_id(trial), int(result["epoch"])
        if epoch > self._last_epoch[trial.trial_id]:  # a trial resumed from an older checkpoint repeats epochs
            metrics = metric_keys.metrics(result, scalars_only=True)
            tags = {"device": result["device"]} if "device" in result else {}
            if (chosen := metric_keys.key(metric_keys.EXTRA, "lp_l2")) in metrics:
                tags["lp_l2"] = short(metrics.pop(chosen))
            self.tracker.log_epoch(run_id, metrics, epoch, int(time.time() * 1000), tags=tags)
            self._last_epoch[trial.trial_id] = epoch

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._attempt(trial, lambda: self.tracker.end_child(self._run_id(trial), outcome_of(trial)))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._attempt(trial, lambda: self.tracker.end_child(self._run_id(trial), "failed"))


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
