"""Results as data: one row per (trial, epoch, split), in one Parquet table per study.

The table lives in ``<study dir>/results.parquet/``, a Parquet dataset with one part file per trial (rewritten as
the trial reports, so a crash loses at most the epoch in flight). ``read_table`` reads it whole. Selection,
reports and plots are functions of this table alone.

Columns: study, trial_id, method, seed, one column per hyper-parameter (NaN where a method has none), epoch,
split, accuracy (percent), loss, ece (percent), brier, feature_change and feature_cosine (FT and LP-FT: the change of
the encoder's features from the pretrained ones), one column per extra metric (e.g. head_norm), outcome
(running | finished | diverged | failed). The train split's row holds only its loss.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from study.config import METHOD_PARAMS

TABLE_DIR = "results.parquet"
METRIC_COLUMNS = {"acc": "accuracy"}
OUTCOMES = ("running", "finished", "diverged", "failed")


def rows_from_report(report: dict, *, study: str, trial_id: str, method: str, seed: int, hparams: dict) -> list[dict]:
    """The table rows of one per-epoch report (a flat dict as the trainable sends it to Ray): one per split, with
    every metric of that split as a column (``acc`` becomes ``accuracy``)."""
    base = {"study": study, "trial_id": trial_id, "method": method, "seed": seed, **hparams,
            "epoch": int(report["epoch"])}
    base.update({key.split("/", 1)[1]: value for key, value in report.items() if key.startswith("extra/")})
    per_split: dict[str, dict] = {}
    for key, value in report.items():
        split, sep, metric = key.partition("/")
        if sep and split != "extra":
            per_split.setdefault(split, {})[METRIC_COLUMNS.get(metric, metric)] = value
    return [{**base, "split": split, "accuracy": float("nan"), **metrics} for split, metrics in sorted(per_split.items())]


def table_dir(study_dir: str | os.PathLike) -> Path:
    return Path(study_dir) / TABLE_DIR


def write_trial_rows(study_dir: str | os.PathLike, trial_id: str, rows: list[dict], outcome: str) -> None:
    """Replace one trial's part of the table, atomically."""
    folder = table_dir(study_dir)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows).assign(outcome=outcome)
    partial = folder / f".{trial_id}.parquet.partial"
    frame.to_parquet(partial, index=False)
    os.replace(partial, folder / f"{trial_id}.parquet")


def read_trial_rows(study_dir: str | os.PathLike, trial_id: str) -> list[dict]:
    path = table_dir(study_dir) / f"{trial_id}.parquet"
    if not path.exists():
        return []
    return pd.read_parquet(path).drop(columns="outcome").to_dict("records")


def read_table(study_dir: str | os.PathLike) -> pd.DataFrame:
    """The whole study table, rows sorted by trial, epoch and split."""
    folder = table_dir(study_dir)
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        raise FileNotFoundError(f"{folder}: no results table; run `study run CONFIG` first, or pass the folder "
                                "of a study (results/<name>)")
    table = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    return table.sort_values(["trial_id", "epoch", "split"], ignore_index=True)


def hparam_columns(table: pd.DataFrame) -> list[str]:
    """The table's hyper-parameter columns (every name a method's search space can hold)."""
    names = {name for params in METHOD_PARAMS.values() for name in params}
    return [column for column in table.columns if column in names]
