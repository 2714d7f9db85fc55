"""Effective robustness (Taori et al. 2020): a model's OOD accuracy above what its ID accuracy predicts.

The prediction is a line in logit space, logit(OOD) = slope * logit(ID) + intercept, fitted by least squares to every
(trial, epoch >= 1) of the study (ID test against the OOD test average), where accuracies under a shift tend to lie
on a line; a method's effective robustness is its OOD average minus the fit's OOD at its ID accuracy, in points of
accuracy, per seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.selection import ACCURACY, OOD_AVG, Selection, headline, ood_splits


def logit(percent) -> np.ndarray:
    p = np.clip(np.asarray(percent, dtype=float) / 100, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def every_point(table: pd.DataFrame) -> pd.DataFrame:
    """One row per finished (trial, epoch >= 1): method, seed, ID test and the OOD test average."""
    rows = table[(table["epoch"] >= 1) & (table["outcome"] == "finished")]
    wide = rows.pivot_table(index=["trial_id", "method", "seed", "epoch"], columns="split", values="accuracy")
    tests = ood_splits(table, "test")
    return wide.assign(ood_avg=wide[tests].mean(axis=1))[["id_test", OOD_AVG]].dropna().reset_index()


def fit_line(points: pd.DataFrame) -> dict | None:
    """The least-squares line of logit(OOD) on logit(ID) over ``points``; None with fewer than 3 distinct IDs."""
    if points["id_test"].nunique() < 3:
        return None
    slope, intercept = np.polyfit(logit(points["id_test"]), logit(points[OOD_AVG]), 1)
    return {"slope": float(slope), "intercept": float(intercept), "points": int(len(points))}


def predicted(fit: dict, id_accuracy) -> np.ndarray:
    """The fit's OOD accuracy (%) at ``id_accuracy`` (%)."""
    return 100 / (1 + np.exp(-(fit["slope"] * logit(id_accuracy) + fit["intercept"])))


def effective_robustness(table: pd.DataFrame, chosen: dict[str, Selection]) -> dict:
    """{"fit": the line, "methods": {method: mean, std, n over seeds}} for the ID-val selections; {} for a
    regression study or too few points."""
    if headline(table) != ACCURACY or not chosen:
        return {}
    fit = fit_line(every_point(table))
    if fit is None:
        return {}
    out = {}
    for method, selection in chosen.items():
        seeds = selection.per_seed
        gaps = seeds[OOD_AVG] - predicted(fit, seeds["id_test"])
        out[method] = {"mean": float(gaps.mean()), "std": float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0,
                       "n": int(gaps.count())}
    return {"fit": fit, "methods": out}
