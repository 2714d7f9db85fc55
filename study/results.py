"""Results as data: one row per (trial, epoch, split), in one Parquet table per study.

The table lives in ``<study dir>/results.parquet/``, a Parquet dataset with one part file per trial (rewritten as
the trial reports, so a crash loses at most the epoch in flight). ``read_table`` reads it whole. Selection,
reports and plots are functions of this table alone.

Columns: study, trial_id, stage (``search``, or ``confirm``: a selected configuration rerun on a new seed by
``study confirm``), method, seed, one column per hyper-parameter (NaN where a method has none), epoch,
split, accuracy (percent), loss, ece (percent), brier, feature_change and feature_cosine (FT and LP-FT: the change of
the encoder's features from the pretrained ones), mse (a regression study's squared error, which it is selected
and reported by), reliability (the calibration bins, a list of 45 sums; see
``study.methods.metrics``), the same calibration columns after temperature scaling (``*_ts``), one column per extra
metric (e.g. head_norm), outcome (running | finished | diverged | failed). The train split's row holds only its loss.

FT-like trials also score WiSE-FT's interpolations after their last epoch: those rows go to a second table,
``wise.parquet/`` (one row per trial, alpha and split: the same identity columns, epoch, alpha, split, accuracy or
mse).

Every part file of a table has the same schema (``schema``: every column above, null where a trial has none), so
``pd.read_parquet(".../results.parquet")`` and ``pyarrow.dataset`` read the whole table, whichever part they
look at first.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from study.methods.catalog import METHODS
from study import metric_keys

SEARCH, CONFIRM = "search", "confirm"  # a trial of the study's search, or a selected configuration on a new seed
TABLE_DIR = "results.parquet"
WISE_TABLE_DIR = "wise.parquet"
METRIC_COLUMNS = {"acc": "accuracy"}
_MEASURES = ("accuracy", "loss", "ece", "brier", "reliability", "loss_ts", "ece_ts", "brier_ts", "reliability_ts",
             "temperature", "mse", "feature_change", "feature_cosine", "head_norm", "lp_l2", "correct")
_LISTS = {"reliability", "reliability_ts"}
_TEXTS = {"correct"}  # an OOD val split's per-example correctness, packed (``study.methods.metrics.pack_correct``)


class TableDamaged(ValueError):
    """A part file of a results table cannot be read; the message is one line naming it."""


def schema(table: str = TABLE_DIR) -> pa.Schema:
    """The columns (and types) every part file of ``table`` holds."""
    hparams = {name: kind for method in METHODS.values() for name, (kind, _) in method.params.items()}
    identity = [("study", pa.string()), ("trial_id", pa.string()), ("stage", pa.string()), ("method", pa.string()),
                ("seed", pa.int64()),
                *((name, _arrow_type(kind)) for name, kind in hparams.items()),
                ("epoch", pa.int64())]
    if table == WISE_TABLE_DIR:
        return pa.schema([*identity, ("alpha", pa.float64()), ("split", pa.string()), ("accuracy", pa.float64()),
                          ("mse", pa.float64())])
    measures = [(name, pa.list_(pa.float64()) if name in _LISTS else pa.string() if name in _TEXTS else
                 pa.float64()) for name in _MEASURES]
    return pa.schema([*identity, ("split", pa.string()), *measures, ("outcome", pa.string())])


def _arrow_type(kind) -> pa.DataType:
    """A hyper-parameter's column type: integers, floats, or names (a catalog ``Choice``)."""
    return pa.int64() if kind is int else pa.float64() if kind is float else pa.string()


def rows_from_report(report: dict, **identity) -> list[dict]:
    """The table rows of one per-epoch report (a flat dict as the trainable sends it to Ray): one per split, with
    every metric of that split as a column (``acc`` becomes ``accuracy``). ``identity``: the trial's
    (``trial_columns``)."""
    base = {**trial_columns(**identity), "epoch": int(report["epoch"])}
    base.update(metric_keys.extras(report))
    return [{**base, "split": split, "accuracy": float("nan"),
             **{METRIC_COLUMNS.get(metric, metric): value for metric, value in metrics.items()}}
            for split, metrics in sorted(metric_keys.per_split(report).items())]


def wise_rows_from_report(report: dict, **identity) -> list[dict]:
    """The WiSE-FT rows of a report (none before the last epoch): one per (alpha, split)."""
    base = {**trial_columns(**identity), "epoch": int(report["epoch"])}
    return [{**base, "alpha": alpha, "split": split, METRIC_COLUMNS.get(metric, metric): value}
            for alpha, split, metric, value in metric_keys.wise_points(report)]


def trial_columns(*, study: str, trial_id: str, stage: str, method: str, seed: int, hparams: dict) -> dict:
    """The columns that say which trial a row is of."""
    return {"study": study, "trial_id": trial_id, "stage": stage, "method": method, "seed": seed, **hparams}


def table_dir(study_dir: str | os.PathLike, table: str = TABLE_DIR) -> Path:
    return Path(study_dir) / table


def write_trial_rows(study_dir: str | os.PathLike, trial_id: str, rows: list[dict], outcome: str | None,
                     table: str = TABLE_DIR) -> None:
    """Replace one trial's part of ``table``, atomically; ``outcome`` fills the outcome column (None: no column)."""
    folder = table_dir(study_dir, table)
    folder.mkdir(parents=True, exist_ok=True)
    layout = schema(table)
    unknown = {column for row in rows for column in row} - set(layout.names)
    if unknown:
        raise ValueError(f"columns {sorted(unknown)} are not in the {table} schema (study.results.schema)")
    exact = {field.name for field in layout if not pa.types.is_floating(field.type)}
    records = [{**row, **{column: None for column, value in row.items() if column in exact and _missing(value)},
                **({} if outcome is None else {"outcome": outcome})} for row in rows]  # NaN only in float columns
    partial = folder / f".{trial_id}.parquet.partial"
    try:
        pq.write_table(pa.Table.from_pylist(records, schema=layout), partial)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk cut it short: never leave half a part behind
        raise
    os.replace(partial, folder / f"{trial_id}.parquet")


def _missing(value) -> bool:
    """NaN where Arrow wants null: a read-back row's empty int or text column, a list metric a split lacks."""
    return isinstance(value, float) and value != value


def read_trial_rows(study_dir: str | os.PathLike, trial_id: str) -> list[dict]:
    path = table_dir(study_dir) / f"{trial_id}.parquet"
    if not path.exists():
        return []
    return pd.read_parquet(path).drop(columns="outcome").to_dict("records")


def read_trial_outcome(part: Path) -> str | None:
    """The outcome a trial's part file records (None: unreadable)."""
    try:
        outcomes = pq.read_table(part, columns=["outcome"]).column("outcome").unique().to_pylist()
    except (OSError, pa.ArrowException):
        return None
    return outcomes[0] if len(outcomes) == 1 else None


def read_table(study_dir: str | os.PathLike, damaged: list[Path] | None = None) -> pd.DataFrame:
    """The whole study table, rows sorted by trial, epoch and split. A part file that cannot be read raises
    ``TableDamaged``, unless ``damaged`` is given: its path is added there and the other parts are read."""
    table = _read_parts(table_dir(study_dir), damaged)
    if table is None:
        raise FileNotFoundError(f"{table_dir(study_dir)}: no results table; run `study run CONFIG` first, or pass "
                                "the folder of a study (results/<name>)")
    return table.sort_values(["trial_id", "epoch", "split"], ignore_index=True)


def read_wise_table(study_dir: str | os.PathLike, damaged: list[Path] | None = None) -> pd.DataFrame | None:
    """The WiSE-FT table, rows sorted by trial, alpha and split; None if the study has none. ``damaged``: as
    ``read_table``'s."""
    table = _read_parts(table_dir(study_dir, WISE_TABLE_DIR), damaged)
    return None if table is None else table.sort_values(["trial_id", "alpha", "split"], ignore_index=True)


def _read_parts(folder: Path, damaged: list[Path] | None) -> pd.DataFrame | None:
    """Every part as one Arrow dataset (read on every core: a study of 1,000 trials is 1,000 parts); if one cannot
    be read, each by itself, so that the damaged one is named."""
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        return None
    try:
        return ds.dataset([str(part) for part in parts], format="parquet", schema=schema(folder.name)).to_table() \
            .to_pandas()
    except (OSError, pa.ArrowException):
        pass
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part))
        except (OSError, pa.ArrowException) as error:
            if damaged is None:
                raise TableDamaged(f"{part}: not a readable Parquet file ({type(error).__name__}): the file is damaged "
                                   "and its trial's rows are lost; `study report` reports the other trials and "
                                   "names this one") from None
            damaged.append(part)
    return pa.concat_tables(tables, promote_options="default").to_pandas() if tables else None


def hparam_columns(table: pd.DataFrame) -> list[str]:
    """The table's hyper-parameter columns (every name a method's search space can hold)."""
    names = {name for method in METHODS.values() for name in method.params}
    return [column for column in table.columns if column in names]


SOUPS_FILE = "soups.parquet"  # the soups cooked from a sweep (``study.tune.soups``): one row per soup and split


def write_soups(study_dir: Path, rows: pd.DataFrame) -> Path:
    """``soups.parquet`` in the study folder, written under a temporary name and renamed (never half-written)."""
    path = Path(study_dir) / SOUPS_FILE
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    rows.to_parquet(partial, index=False)
    os.replace(partial, path)
    return path


def read_soups(study_dir: Path) -> pd.DataFrame | None:
    path = Path(study_dir) / SOUPS_FILE
    return pd.read_parquet(path) if path.is_file() else None
