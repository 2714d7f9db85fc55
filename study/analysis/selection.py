"""Model selection over the results table: hyper-parameters *and* epoch, per method.

``select(table, method, rule)`` is the one rule the study uses, with two criteria:

- ``id_val`` (the paper's rule): ID validation accuracy.
- ``ood_oracle`` (the ablation): the mean of the OOD validation accuracies, i.e. peeking at the shift.

For each method, every (hyper-parameter configuration, epoch) is scored by the criterion averaged over seeds;
the highest wins, ties going to the first configuration in table order and then the earliest epoch. Only
configurations whose every seed finished are eligible: a configuration that diverged or failed on any seed is
never picked. Epoch 0 (the untrained starting point) is never a candidate. The selected (configuration, epoch)
is then reported on every test split as mean, sample standard deviation and count over its seeds.

Only the search's trials choose. The trials ``study confirm`` adds (stage ``confirm``: the selected
configurations rerun on new seeds) are then reported with them: the same criterion picks the same configuration
and epoch, and the tables count every seed that finished.

A regression study (its table has an ``mse`` column) is selected and reported by the squared error instead, the
lowest winning: ``headline`` says which.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from study.methods.catalog import METHODS
from study.results import CONFIRM, hparam_columns

RULES = ("id_val", "ood_oracle")
OOD_AVG = "ood_avg"


@dataclass(frozen=True)
class Headline:
    """What a study is selected and reported by: a column of its table, and whether higher is better."""

    column: str
    higher_is_better: bool
    label: str


ACCURACY = Headline("accuracy", True, "Accuracy in %")
SQUARED_ERROR = Headline("mse", False, "Mean squared error")


def headline(table: pd.DataFrame) -> Headline:
    return SQUARED_ERROR if "mse" in table.columns and table["mse"].notna().any() else ACCURACY


@dataclass(frozen=True)
class Selection:
    method: str
    rule: str
    config: dict
    epoch: int
    criterion: float
    splits: dict[str, dict[str, float]]  # split -> {"mean", "std", "n"}
    trial_ids: tuple[str, ...]


def ood_splits(table: pd.DataFrame, part: str) -> list[str]:
    """OOD split names of one part (``val`` or ``test``), as they appear in the table."""
    names = sorted(set(table["split"]))
    return [name for name in names if name.endswith(f"_{part}") and name != f"id_{part}"]


def select(table: pd.DataFrame, method: str, rule: str = "id_val") -> Selection | None:
    """The selected configuration and epoch of ``method`` under ``rule``, or None if nothing is eligible."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; use one of {RULES}")
    rows, measure = table[table["method"] == method], headline(table)
    keys = [column for column in hparam_columns(rows) if rows[column].notna().all()]
    every = _per_epoch(rows[rows["outcome"] == "finished"], keys, measure.column)
    every = every[every.index.get_level_values("epoch") >= 1]
    searched = rows[rows["stage"] != CONFIRM] if "stage" in rows else rows
    complete, search_trials = _complete_configs(searched, keys), set(searched["trial_id"])
    wide = every[[_key(index, keys) in complete and trial in search_trials
                  for index, trial in zip(every.index, every.index.get_level_values("trial_id"))]]
    if wide.empty:
        return None
    val_splits = ["id_val"] if rule == "id_val" else ood_splits(table, "val")
    wide = wide.assign(_criterion=wide[val_splits].mean(axis=1))
    by_candidate = wide.groupby(keys + ["epoch"], sort=False)["_criterion"].mean()
    best = by_candidate.idxmax() if measure.higher_is_better else by_candidate.idxmin()
    best = best if isinstance(best, tuple) else (best,)
    chosen = every.xs(best, level=keys + ["epoch"], drop_level=False)  # the search's seeds and confirm's
    types = {name: kind for name, (kind, _) in METHODS[method].params.items()} if method in METHODS else {}
    config = {key: types.get(key, _plain)(value) for key, value in zip(keys, best[:-1])}  # epochs: 8, not 8.0
    return Selection(method=method, rule=rule, config=config, epoch=int(best[-1]),
                     criterion=float(by_candidate.max() if measure.higher_is_better else by_candidate.min()),
                     splits=_summary(chosen, table),
                     trial_ids=tuple(chosen.index.get_level_values("trial_id")))


def selected_rows(table: pd.DataFrame, trial_ids, epoch: int) -> pd.DataFrame:
    """The table's rows of a selection: its trials (one per seed) at its epoch."""
    return table[table["trial_id"].isin(trial_ids) & (table["epoch"] == epoch)]


def metric_of(selection: Selection, table: pd.DataFrame, metric: str) -> dict[str, dict[str, float]] | None:
    """Another metric of a selection (e.g. ``ece``, ``feature_change``): its trials at its epoch, summarised like
    its headline (mean, std, n over seeds per test split and the OOD average); None where the method has none."""
    if metric not in table.columns:
        return None
    rows = selected_rows(table, selection.trial_ids, selection.epoch)
    wide = rows.pivot_table(index="seed", columns="split", values=metric)
    if not {"id_test", *ood_splits(table, "test")} <= set(wide.columns):
        return None
    return _summary(wide, table)


def per_seed(selection: Selection, table: pd.DataFrame) -> pd.DataFrame:
    """A selection's headline metric per seed (rows) on ID test, each OOD test split and their average
    (columns)."""
    rows = selected_rows(table, selection.trial_ids, selection.epoch)
    wide = rows.pivot_table(index="seed", columns="split", values=headline(table).column)
    tests = ood_splits(table, "test")
    return wide[["id_test", *tests]].assign(**{OOD_AVG: wide[tests].mean(axis=1)})


BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED = 10_000, 0


def paired_difference(selection: Selection, baseline: Selection, table: pd.DataFrame) -> dict[str, dict] | None:
    """``selection`` minus ``baseline``, paired by seed (the same seed: the same data order, the same test sets):
    per test split and the OOD average, the mean, sample std and number of the per-seed differences and a 95 %
    percentile-bootstrap interval of their mean (seeds resampled with replacement, 10,000 times, a fixed seed);
    None where they share no seed."""
    differences = (per_seed(selection, table) - per_seed(baseline, table)).dropna()
    if differences.empty:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(differences), size=(BOOTSTRAP_SAMPLES, len(differences)))
    out = {}
    for split, values in differences.items():
        means = values.to_numpy()[draws].mean(axis=1)
        out[split] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                      "n": int(len(values)), "ci_low": float(np.percentile(means, 2.5)),
                      "ci_high": float(np.percentile(means, 97.5))}
    return out


def head_norm_of(selection: Selection, table: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    """The norm of a selection's linear head at its trials' start (epoch 0; for LP-FT, the LP head it starts from)
    and at its selected epoch, as mean, std and n over seeds; None where the table has no head norms."""
    if "head_norm" not in table.columns:
        return None
    rows = table[table["trial_id"].isin(selection.trial_ids) & (table["split"] == "id_val")]
    out = {}
    for name, epoch in (("start", 0), ("selected", selection.epoch)):
        values = rows[rows["epoch"] == epoch]["head_norm"].dropna()
        if len(values):
            out[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                         "n": int(values.count())}
    return out or None


def wise_of(selection: Selection, wise: pd.DataFrame, table: pd.DataFrame) -> dict[float, dict] | None:
    """The WiSE-FT curve of a selection's configuration (interpolating to its trials' final weights): per alpha,
    the headline metric summarised like the selection's own; None where its trials scored no WiSE-FT."""
    rows = wise[wise["trial_id"].isin(selection.trial_ids)]
    if rows.empty:
        return None
    wide = rows.pivot_table(index=["alpha", "seed"], columns="split", values=headline(table).column)
    return {float(alpha): _summary(wide.xs(alpha, level="alpha"), table)
            for alpha in wide.index.get_level_values("alpha").unique()}


def per_configuration(table: pd.DataFrame, method: str, rule: str = "id_val") -> list[Selection]:
    """``select`` within each hyper-parameter configuration of ``method`` (its epoch picked by ``rule``): what the
    study would report had it searched only that configuration. The data of a sensitivity plot."""
    rows = table[table["method"] == method]
    keys = [column for column in hparam_columns(rows) if rows[column].notna().all()]
    picks = [select(group, method, rule) for _, group in rows.groupby(keys, sort=False)] if keys else []
    return [pick for pick in picks if pick is not None]


def _per_epoch(rows: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """One row per (configuration, seed, epoch), one column per split's ``column``."""
    return rows.pivot_table(index=keys + ["seed", "trial_id", "epoch"], columns="split", values=column,
                            sort=False)


def _complete_configs(rows: pd.DataFrame, keys: list[str]) -> set[tuple]:
    outcomes = rows.groupby(keys, sort=False)["outcome"].agg(lambda values: set(values) == {"finished"})
    return {index if isinstance(index, tuple) else (index,) for index, ok in outcomes.items() if ok}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _key(index: tuple, keys: list[str]) -> tuple:
    return tuple(index[: len(keys)])


def _summary(chosen: pd.DataFrame, table: pd.DataFrame) -> dict[str, dict[str, float]]:
    tests = ood_splits(table, "test")
    per_seed = chosen[["id_test", *tests]].assign(**{OOD_AVG: chosen[tests].mean(axis=1)})
    return {split: {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "n": int(values.count())}
            for split, values in per_seed.items()}
