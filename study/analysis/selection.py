"""Model selection over the results table: hyper-parameters *and* epoch, per method, by named rules.

``select(table, method, rule)`` picks, for each method, the (hyper-parameter configuration, epoch) whose criterion,
averaged over seeds, is best, and reports it on the test splits as mean, sample standard deviation and count over
its seeds. The rules (DomainBed's model-selection strategies, and AutoFT's regime):

- ``id_val`` (the paper's rule): ID validation accuracy.
- ``ood_oracle`` (the ablation; DomainBed's test-domain validation): the mean of the OOD validation accuracies,
  i.e. peeking at the shift. An upper bound on what selection can do, not a method.
- ``small_ood_val``: the same on a few labelled OOD examples only, ``k`` per class from each OOD val split
  (which ones: drawn by ``seed``), the rest of OOD val unused (AutoFT's regime).
- ``leave_one_domain_out`` (DomainBed's): select on one OOD domain's val and report the *other* domains' tests,
  once per held-out domain, averaged; it never reads the test split of the domain it selects on (a study with one
  OOD domain has no such rule).

Ties go to the first configuration in table order and then the earliest epoch. Only configurations whose every
seed finished are eligible: a configuration that diverged or failed on any seed is never picked. Epoch 0 (the
untrained starting point) is never a candidate. Every rule reads the val splits to choose and the test splits only
of what it chose; ``Selection.test_reads`` counts those test values.

Only the search's trials choose. The trials ``study confirm`` adds (stage ``confirm``: the selected
configurations rerun on new seeds) are then reported with them: the same criterion picks the same configuration
and epoch, and the tables count every seed that finished.

A regression study (its table has an ``mse`` column) is selected and reported by the squared error instead, the
lowest winning: ``headline`` says which.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from study.methods.catalog import typed
from study.methods.metrics import unpack_correct
from study.results import CONFIRM, hparam_columns

RULES = ("id_val", "ood_oracle", "small_ood_val", "leave_one_domain_out")
OOD_AVG = "ood_avg"


@dataclass(frozen=True)
class Headline:
    """What a study is selected and reported by: a column of its table, and whether higher is better."""

    column: str
    higher_is_better: bool
    label: str


ACCURACY = Headline("accuracy", True, "Accuracy in %")
SQUARED_ERROR = Headline("mse", False, "Mean squared error")


@dataclass(frozen=True)
class SmallVal:
    """The small-OOD-val rule's labelled examples: ``k`` per class of each OOD val split, drawn by ``seed``;
    ``labels``: each OOD val split's labels, in its order (a study writes them at its start)."""

    k: int = 16
    seed: int = 0
    labels: dict[str, list[int]] = field(default_factory=dict)

    def subset(self, split: str) -> np.ndarray:
        """The indices of the examples this rule may read, ``k`` of each class (all of a class that has fewer)."""
        labels = np.asarray(self.labels[split])
        rng = np.random.default_rng([self.seed, sum(map(ord, split))])
        picks = [rng.permutation(np.flatnonzero(labels == label))[: self.k] for label in np.unique(labels)]
        return np.sort(np.concatenate(picks))


def headline(table: pd.DataFrame) -> Headline:
    return SQUARED_ERROR if "mse" in table.columns and table["mse"].notna().any() else ACCURACY


@dataclass(frozen=True)
class Selection:
    method: str
    rule: str
    config: dict  # leave-one-domain-out: {} (see held_out)
    epoch: int  # leave-one-domain-out: the epoch all its choices share, else -1
    criterion: float
    splits: dict[str, dict[str, float]]  # split -> {"mean", "std", "n"}
    trial_ids: tuple[str, ...]
    per_seed: pd.DataFrame = field(default=None, compare=False, repr=False)  # seed x (id_test, tests, ood_avg)
    test_reads: int = 0  # the test values the rule read: only those of what it chose
    held_out: dict[str, str] | None = None  # leave-one-domain-out: per domain selected on, "lr=0.1 (8)"


def ood_splits(table: pd.DataFrame, part: str) -> list[str]:
    """OOD split names of one part (``val`` or ``test``), as they appear in the table."""
    names = sorted(set(table["split"]))
    return [name for name in names if name.endswith(f"_{part}") and name != f"id_{part}"]


def select(table: pd.DataFrame, method: str, rule: str = "id_val", small: SmallVal | None = None,
           candidates: tuple | None = None) -> Selection | None:
    """The selected configuration and epoch of ``method`` under ``rule``, or None if nothing is eligible (or the
    rule does not apply: one OOD domain for leave-one-domain-out; no labels for small OOD val). ``candidates``:
    ``candidates_of(table, method)`` where the caller has it, or a part of it."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; use one of {RULES}")
    candidates = candidates_of(table, method) if candidates is None else candidates
    if candidates is None:
        return None
    every, wide, keys = candidates
    if rule == "leave_one_domain_out":
        return _leave_one_domain_out(table, method, every, wide, keys)
    if rule == "small_ood_val" and not (small and small.labels):
        return None
    criterion = (wide["id_val"] if rule == "id_val" else
                 wide[ood_splits(table, "val")].mean(axis=1) if rule == "ood_oracle" else
                 _small_val_accuracy(table, wide, small))
    best, value, chosen = _best(every, wide, keys, criterion, headline(table))
    per_seed, reads = _reported(chosen, table, _test_splits(table))
    return Selection(method=method, rule=rule, config=_config(method, keys, best), epoch=int(best[-1]),
                     criterion=value, splits=_summary(per_seed), per_seed=per_seed, test_reads=reads,
                     trial_ids=tuple(chosen.index.get_level_values("trial_id")))


def candidates_of(table: pd.DataFrame, method: str):
    """(every finished (configuration, seed, trial, epoch >= 1) row, those of the search's complete configurations,
    the hyper-parameter names); None where nothing is eligible."""
    rows, measure = table[table["method"] == method], headline(table)
    keys = [column for column in hparam_columns(rows) if rows[column].notna().all()]
    every = _per_epoch(rows[rows["outcome"] == "finished"], keys, measure.column)
    every = every[every.index.get_level_values("epoch") >= 1]
    searched = rows[rows["stage"] != CONFIRM] if "stage" in rows else rows
    complete, search_trials = _complete_configs(searched, keys), set(searched["trial_id"])
    wide = every[[_key(index, keys) in complete and trial in search_trials
                  for index, trial in zip(every.index, every.index.get_level_values("trial_id"))]]
    return None if wide.empty else (every, wide, keys)


def _best(every: pd.DataFrame, wide: pd.DataFrame, keys: list[str], criterion: pd.Series, measure: Headline):
    """(the best (configuration..., epoch) by ``criterion`` averaged over seeds, its value, its rows in ``every``:
    the search's seeds and confirm's)."""
    by_candidate = wide.assign(_criterion=criterion).groupby(keys + ["epoch"], sort=False)["_criterion"].mean()
    best = by_candidate.idxmax() if measure.higher_is_better else by_candidate.idxmin()
    best = best if isinstance(best, tuple) else (best,)
    value = float(by_candidate.max() if measure.higher_is_better else by_candidate.min())
    return best, value, every.xs(best, level=keys + ["epoch"], drop_level=False)


def _config(method: str, keys: list[str], best: tuple) -> dict:
    return typed(method, dict(zip(keys, best[:-1])))  # epochs: 8, not 8.0


def _test_splits(table: pd.DataFrame) -> list[str]:
    return ["id_test", *ood_splits(table, "test")]


def _reported(chosen: pd.DataFrame, table: pd.DataFrame, tests: list[str]) -> tuple[pd.DataFrame, int]:
    """The chosen rows' test splits per seed, the OOD ones averaged (``ood_avg``), and how many test values that
    read."""
    by_seed = chosen.droplevel([name for name in chosen.index.names if name != "seed"])[tests]
    ood = [name for name in tests if name != "id_test"]
    return by_seed.assign(**{OOD_AVG: by_seed[ood].mean(axis=1)}), int(by_seed.size)


def _small_val_accuracy(table: pd.DataFrame, wide: pd.DataFrame, small: SmallVal) -> pd.Series:
    """Each (trial, epoch)'s accuracy on the small OOD val sets, averaged over the OOD domains."""
    rows = table[table["split"].isin(small.labels) & (table["epoch"] >= 1)].set_index(["trial_id", "epoch",
                                                                                         "split"])["correct"]
    accuracy = []
    for trial, epoch in zip(wide.index.get_level_values("trial_id"), wide.index.get_level_values("epoch")):
        scores = [100.0 * unpack_correct(rows[(trial, epoch, split)], len(small.labels[split]))[small.subset(split)]
                  .mean() for split in small.labels]
        accuracy.append(float(np.mean(scores)))
    return pd.Series(accuracy, index=wide.index)


def _leave_one_domain_out(table: pd.DataFrame, method: str, every: pd.DataFrame, wide: pd.DataFrame,
                          keys: list[str]) -> Selection | None:
    """Select on each OOD domain's val in turn, report the other domains' tests (and ID test), averaged per seed
    over the held-out domains."""
    domains = [name[: -len("_val")] for name in ood_splits(table, "val")]
    if len(domains) < 2:
        return None
    parts, choices, trials, reads, criteria = [], {}, [], 0, []
    varied = [key for key in keys if wide.index.get_level_values(key).nunique() > 1] or keys[:1]
    for domain in domains:
        others = [f"{other}_test" for other in domains if other != domain]
        best, value, chosen = _best(every, wide, keys, wide[f"{domain}_val"], headline(table))
        per_seed, read = _reported(chosen, table, ["id_test", *others])
        parts.append(per_seed)
        choices[domain] = (", ".join(f"{k}={_short(v)}" for k, v in _config(method, keys, best).items()
                                     if k in varied) + f" ({int(best[-1])})")
        trials += list(chosen.index.get_level_values("trial_id"))
        reads, criteria = reads + read, criteria + [value]
    per_seed = pd.concat(parts).groupby(level="seed").mean()  # each test split: its mean where it was reported
    per_seed[OOD_AVG] = pd.concat([part[OOD_AVG] for part in parts]).groupby(level="seed").mean()
    epochs = {int(choice.rsplit("(", 1)[1][:-1]) for choice in choices.values()}
    return Selection(method=method, rule="leave_one_domain_out", config={},
                     epoch=epochs.pop() if len(epochs) == 1 else -1, criterion=float(np.mean(criteria)),
                     splits=_summary(per_seed), per_seed=per_seed, test_reads=reads,
                     trial_ids=tuple(dict.fromkeys(trials)), held_out=choices)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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
    return _summary(_averaged(wide, table))


def per_seed(selection: Selection, table: pd.DataFrame) -> pd.DataFrame:
    """A selection's headline metric per seed (rows) on ID test, each OOD test split and their average
    (columns)."""
    return selection.per_seed


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
    return {float(alpha): _summary(_averaged(wide.xs(alpha, level="alpha"), table))
            for alpha in wide.index.get_level_values("alpha").unique()}


def per_configuration(table: pd.DataFrame, method: str, rule: str = "id_val") -> list[Selection]:
    """``select`` within each hyper-parameter configuration of ``method`` (its epoch picked by ``rule``): what the
    study would report had it searched only that configuration. The data of a sensitivity plot."""
    candidates = candidates_of(table, method)
    if candidates is None or not candidates[2]:
        return []
    every, wide, keys = candidates
    every_of = dict(list(every.groupby(level=keys, sort=False)))  # pivoted once, not once per configuration
    picks = [select(table, method, rule, candidates=(every_of[config], part, keys))
             for config, part in wide.groupby(level=keys, sort=False)]
    return [pick for pick in picks if pick is not None]


def _per_epoch(rows: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """One row per (configuration, seed, epoch), one column per split's ``column``."""
    return rows.pivot_table(index=keys + ["seed", "trial_id", "epoch"], columns="split", values=column,
                            sort=False)


def _complete_configs(rows: pd.DataFrame, keys: list[str]) -> set[tuple]:
    outcomes = rows.groupby(keys, sort=False)["outcome"].agg(lambda values: set(values) == {"finished"})
    return {index if isinstance(index, tuple) else (index,) for index, ok in outcomes.items() if ok}


def _key(index: tuple, keys: list[str]) -> tuple:
    return tuple(index[: len(keys)])


def _averaged(wide: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per-seed test splits (columns of ``wide``) with their OOD average."""
    tests = ood_splits(table, "test")
    return wide[["id_test", *tests]].assign(**{OOD_AVG: wide[tests].mean(axis=1)})


def _summary(per_seed: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean, sample std and count over seeds of each column."""
    return {split: {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.count() > 1 else 0.0,
                    "n": int(values.count())}
            for split, values in per_seed.items()}
