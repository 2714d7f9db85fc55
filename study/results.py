"""Results as data: one row per (trial, epoch, split), in one Parquet table per study.

The table lives in ``<study dir>/results.parquet/``, a Parquet dataset with one part file per trial (rewritten as
the trial reports, so a crash loses at most the epoch in flight). ``read_table`` reads it whole. Selection,
reports and plots are functions of this table alone.

Columns: study, trial_id, method, seed, one column per hyper-parameter (NaN where a method has none), epoch,
split, accuracy (percent), loss, ece (percent), brier, feature_change and feature_cosine (FT and LP-FT: the change of
the encoder's features from the pretrained ones), mse (a regression study's squared error, which it is selected
and reported by), reliability (the calibration bins, a list of 45 sums; see
``study.methods.metrics``), the same calibration columns after temperature scaling (``*_ts``), one column per extra
metric (e.g. head_norm), outcome (running | finished | diverged | failed). The train split's row holds only its loss.

FT-like trials also score WiSE-FT's interpolations after their last epoch: those rows go to a second table,
``wise.parquet/`` (one row per trial, alpha and split: the same identity columns, epoch, alpha, split, accuracy or
mse).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from study.config import METHOD_PARAMS
from study.methods.evaluation import WISE

TABLE_DIR = "results.parquet"
WISE_TABLE_DIR = "wise.parquet"
WISE_PREFIX = f"{WISE}/"  # a report's WiSE-FT keys: wise/<alpha>/<split>/acc
METRIC_COLUMNS = {"acc": "accuracy"}
OUTCOMES = ("running", "finished", "diverged", "failed")


def rows_from_report(report: dict, *, study: str, trial_id: str, method: str, seed: int, hparams: dict) -> list[dict]:
    """The table rows of one per-epoch report (a flat dict as the trainable sends it to Ray): one per split, with
    every metric of that split as a column (``acc`` becomes ``accuracy``)."""
    base = _identity(report, study, trial_id, method, seed, hparams)
    base.update({key.split("/", 1)[1]: value for key, value in report.items() if key.startswith("extra/")})
    per_split: dict[str, dict] = {}
    for key, value in report.items():
        split, sep, metric = key.partition("/")
        if sep and split != "extra" and not key.startswith(WISE_PREFIX):
            per_split.setdefault(split, {})[METRIC_COLUMNS.get(metric, metric)] = value
    return [{**base, "split": split, "accuracy": float("nan"), **metrics} for split, metrics in sorted(per_split.items())]


def wise_rows_from_report(report: dict, *, study: str, trial_id: str, method: str, seed: int,
                          hparams: dict) -> list[dict]:
    """The WiSE-FT rows of a report (none before the last epoch): one per (alpha, split)."""
    base = _identity(report, study, trial_id, method, seed, hparams)
    rows = []
    for key, value in report.items():
        if key.startswith(WISE_PREFIX):
            alpha, split, metric = key[len(WISE_PREFIX):].split("/")
            rows.append({**base, "alpha": float(alpha), "split": split, METRIC_COLUMNS.get(metric, metric): value})
    return rows


def _identity(report: dict, study: str, trial_id: str, method: str, seed: int, hparams: dict) -> dict:
    return {"study": study, "trial_id": trial_id, "method": method, "seed": seed, **hparams,
            "epoch": int(report["epoch"])}


def table_dir(study_dir: str | os.PathLike, table: str = TABLE_DIR) -> Path:
    return Path(study_dir) / table


def write_trial_rows(study_dir: str | os.PathLike, trial_id: str, rows: list[dict], outcome: str | None,
                     table: str = TABLE_DIR) -> None:
    """Replace one trial's part of ``table``, atomically; ``outcome`` fills the outcome column (None: no column)."""
    folder = table_dir(study_dir, table)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    if outcome is not None:
        frame = frame.assign(outcome=outcome)
    for column in frame.columns[frame.apply(lambda values: values.map(_is_list).any())]:
        frame[column] = frame[column].map(lambda value: value if _is_list(value) else None)  # Arrow lists: no NaN
    partial = folder / f".{trial_id}.parquet.partial"
    frame.to_parquet(partial, index=False)
    os.replace(partial, folder / f"{trial_id}.parquet")


def _is_list(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def read_trial_rows(study_dir: str | os.PathLike, trial_id: str) -> list[dict]:
    path = table_dir(study_dir) / f"{trial_id}.parquet"
    if not path.exists():
        return []
    return pd.read_parquet(path).drop(columns="outcome").to_dict("records")


def read_table(study_dir: str | os.PathLike) -> pd.DataFrame:
    """The whole study table, rows sorted by trial, epoch and split."""
    table = _read_parts(table_dir(study_dir))
    if table is None:
        raise FileNotFoundError(f"{table_dir(study_dir)}: no results table; run `study run CONFIG` first, or pass "
                                "the folder of a study (results/<name>)")
    return table.sort_values(["trial_id", "epoch", "split"], ignore_index=True)


def read_wise_table(study_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The WiSE-FT table, rows sorted by trial, alpha and split; None if the study has none."""
    table = _read_parts(table_dir(study_dir, WISE_TABLE_DIR))
    return None if table is None else table.sort_values(["trial_id", "alpha", "split"], ignore_index=True)


def _read_parts(folder: Path) -> pd.DataFrame | None:
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True) if parts else None


def hparam_columns(table: pd.DataFrame) -> list[str]:
    """The table's hyper-parameter columns (every name a method's search space can hold)."""
    names = {name for params in METHOD_PARAMS.values() for name in params}
    return [column for column in table.columns if column in names]
