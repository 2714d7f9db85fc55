"""``study confirm DIR --seeds N``: every method's selected configuration rerun on N new seeds, into the same study.

A search of a few seeds selects with noise and reports a small n; DomainBed's users asked for the selected models
to be rerun on more seeds (facebookresearch/DomainBed#22). The configurations picked by ID validation, and the
oracle's where it picks another, each run once per new seed (seeds after the study's largest) as a Ray Tune
experiment of their own (``confirm-<k>`` beside ``ray/``), into the same results table as stage ``confirm`` and
as new child runs of the same MLflow parent run. Selection still chooses among the search's trials only; the
report then counts every seed (``study.analysis.selection``). The plan is written to ``confirm-<k>.json``
before the first trial, so the same command, run again, continues an interrupted confirmation.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pandas as pd

from study.analysis.report import selections
from study.config import StudyConfig
from study.preflight import check_machine
from study.results import CONFIRM, read_table
from study.tracking import split_inputs
from study.tune.lock import StudyLock
from study.tune.runner import (build_tuner, experiment_exists, fit, load_study,
                               parent_tracker, reopen, restore_tuner, study_callbacks)

PLAN = "confirm-{}.json"


CONFIRMED = ("id_val", "ood_oracle")  # the rules whose one chosen configuration per method confirm reruns


class ConfirmError(ValueError):
    """``study confirm`` cannot start (one line: why, and what to do)."""


def plan(table: pd.DataFrame, count: int) -> dict:
    """The trials of a confirmation: each selected configuration (by any rule, once) on ``count`` seeds after the
    largest the table holds."""
    if count < 1:
        raise ConfirmError(f"--seeds {count}: give the number of new seeds, 1 or more")
    start = int(table["seed"].max()) + 1
    seeds = list(range(start, start + count))
    chosen: dict[tuple, dict] = {}
    for rule, picks in selections(table).items():
        for method, selection in picks.items() if rule in CONFIRMED else ():
            config = {"method": method, **{f"{method}.{key}": value for key, value in selection.config.items()}}
            chosen.setdefault(tuple(sorted(config.items())), config)
    if not chosen:
        raise ConfirmError("nothing to confirm: no method has a configuration that finished on every seed; "
                           "`study report` says why")
    return {"seeds": seeds, "points": [{**config, "seed": seed} for config in chosen.values() for seed in seeds]}


def confirm_study(study_dir: Path, count: int, *, progress: bool = True, **settings) -> tuple[dict, str, StudyConfig]:
    """Run (or continue) ``study confirm``; returns the report with every seed, and the study's configuration."""
    study_dir = Path(study_dir)
    study = load_study(study_dir, **settings)
    check_machine(study)
    with StudyLock(study.study_dir, new=False, command="study confirm"):
        return _confirm(study, study_dir, count, progress)


def _confirm(study: StudyConfig, study_dir: Path, count: int, progress: bool) -> tuple[dict, str, StudyConfig]:
    tracker = parent_tracker(study)
    index, trials = _pending(study_dir, count)
    trials = trials or plan(read_table(study_dir), count)
    name = f"confirm-{index}"
    benchmark, prepared = reopen(study, tracker, progress)
    (study_dir / PLAN.format(index)).write_text(json.dumps({**trials, "finished": False}, indent=2))
    if experiment_exists(study, name):
        make = partial(restore_tuner, study, prepared, name)
    else:
        callbacks = study_callbacks(study, tracker, split_inputs(benchmark), len(trials["points"]), progress,
                                    CONFIRM)
        make = partial(build_tuner, study, prepared, callbacks, trials["points"], name)
    report, text = fit(study, tracker, make, len(trials["points"]),
                       f"study confirm {study.study_dir} --seeds {count}")
    (study_dir / PLAN.format(index)).write_text(json.dumps({**trials, "finished": True}, indent=2))
    return report, text, study


def _pending(study_dir: Path, count: int) -> tuple[int, dict | None]:
    """The index of the next confirmation and, if the last one did not finish, its plan (to continue it)."""
    plans = {int(path.stem.split("-")[1]): path for path in study_dir.glob(PLAN.format("*"))}
    if not plans:
        return 1, None
    index = max(plans)
    last = json.loads(plans[index].read_text())
    if last["finished"]:
        return index + 1, None
    if len(last["seeds"]) != count:
        raise ConfirmError(f"{plans[index]}: a confirmation on {len(last['seeds'])} new seeds did not finish; "
                           f"`study confirm {study_dir} --seeds {len(last['seeds'])}` continues it")
    return index, {"seeds": last["seeds"], "points": last["points"]}
