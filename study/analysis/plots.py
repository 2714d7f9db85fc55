"""The report's figures, drawn from the results table alone; each PNG has the CSV of what it plots beside it.

- ``effective_robustness.png``: ID-test vs OOD-average accuracy of every (trial, epoch >= 1), on logit-scaled axes
  (where accuracies under a shift tend to lie on a line), coloured by method, the ID-val-selected models marked.
- ``accuracy_per_epoch.png``: ID-val and OOD-val accuracy per epoch of each method's selected configuration (mean
  over seeds), with the epochs picked by ID val and by the oracle.
- ``feature_change.png``: the selected models' feature change, ID test vs OOD test average.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study.analysis.report import METHOD_NAMES as NAMES  # noqa: E402
from study.analysis.selection import ood_splits  # noqa: E402

COLOURS = {"lp": "tab:blue", "ft": "tab:red", "lpft": "tab:green"}


def _logit(percent: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(percent, dtype=float) / 100, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _per_trial_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, epoch >= 1): method, ID test and the OOD test average."""
    rows = table[(table["epoch"] >= 1) & (table["outcome"] == "finished")]
    wide = rows.pivot_table(index=["trial_id", "method", "seed", "epoch"], columns="split", values="accuracy")
    tests = ood_splits(table, "test")
    return wide.assign(ood_avg=wide[tests].mean(axis=1))[["id_test", "ood_avg"]].reset_index()


def effective_robustness(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    points = _per_trial_epoch(table)
    chosen = report["chosen"]["id_val"]
    points["selected"] = [trial in chosen.get(method, {}).get("trial_ids", ()) and epoch == chosen[method]["epoch"]
                          for trial, method, epoch in zip(points["trial_id"], points["method"], points["epoch"])]
    points.to_csv(folder / "effective_robustness.csv", index=False)
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    for method, group in points.groupby("method"):
        axes.scatter(_logit(group["id_test"]), _logit(group["ood_avg"]), s=10, alpha=0.35,
                     color=COLOURS.get(method), label=NAMES.get(method, method))
        picked = group[group["selected"]]
        axes.scatter(_logit(picked["id_test"]), _logit(picked["ood_avg"]), s=70, marker="*", edgecolor="black",
                     color=COLOURS.get(method))
    ticks = np.array([50, 70, 80, 90, 95, 98, 99])
    axes.set_xticks(_logit(ticks), [f"{t}" for t in ticks])
    axes.set_yticks(_logit(ticks), [f"{t}" for t in ticks])
    axes.set(xlabel="ID test accuracy (%, logit scale)", ylabel="OOD test accuracy, average (%, logit scale)",
             title="Every trial and epoch; stars: selected by ID val")
    axes.legend()
    return _save(figure, folder / "effective_robustness.png")


def accuracy_per_epoch(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    ood = ood_splits(table, "val")
    rows = table[table["split"].isin(["id_val", *ood]) & (table["epoch"] >= 1)]
    curves = []
    for method, pick in report["chosen"]["id_val"].items():
        trials = rows[rows["trial_id"].isin(pick["trial_ids"])]
        wide = trials.pivot_table(index="epoch", columns="split", values="accuracy")  # mean over seeds
        curves.append(pd.DataFrame({"method": method, "epoch": wide.index, "id_val": wide["id_val"].values,
                                    "ood_val_avg": wide[ood].mean(axis=1).values}))
    data = pd.concat(curves, ignore_index=True)
    data.to_csv(folder / "accuracy_per_epoch.csv", index=False)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for method, group in data.groupby("method"):
        for axis, column in zip(axes, ("id_val", "ood_val_avg")):
            axis.plot(group["epoch"], group[column], marker="o", color=COLOURS.get(method),
                      label=NAMES.get(method, method))
            for rule, style in (("id_val", "-"), ("ood_oracle", ":")):
                epoch = report["chosen"][rule].get(method, {}).get("epoch")
                if epoch is not None and group["epoch"].nunique() > 1:
                    axis.axvline(epoch, color=COLOURS.get(method), linestyle=style, alpha=0.6)
    axes[0].set(title="ID val", xlabel="epoch", ylabel="accuracy (%)")
    axes[1].set(title="OOD val average", xlabel="epoch")
    figure.suptitle("Selected configurations; lines: epoch picked by ID val (solid) and by the oracle (dotted)")
    axes[0].legend()
    return _save(figure, folder / "accuracy_per_epoch.png")


def feature_change(report: dict, folder: Path) -> Path | None:
    values = report["analysis"].get("feature_change") or {}
    if not values:
        return None
    data = pd.DataFrame([{"method": method, "split": split, "mean": 100 * stats[split]["mean"],
                          "std": 100 * stats[split]["std"]}
                         for method, stats in values.items() for split in ("id_test", "ood_avg")])
    data.to_csv(folder / "feature_change.csv", index=False)
    figure, axes = plt.subplots(figsize=(5, 3.5))
    methods = list(values)
    for offset, split in ((-0.2, "id_test"), (0.2, "ood_avg")):
        part = data[data["split"] == split].set_index("method").loc[methods]
        axes.bar(np.arange(len(methods)) + offset, part["mean"], width=0.4, yerr=part["std"], capsize=3,
                 label="ID test" if split == "id_test" else "OOD test (average)")
    axes.set_xticks(np.arange(len(methods)), [NAMES.get(m, m) for m in methods])
    axes.set(ylabel="feature change x100", title="How far the selected models moved the features")
    axes.legend()
    return _save(figure, folder / "feature_change.png")


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def draw_all(table: pd.DataFrame, report: dict, folder: Path) -> list[Path]:
    """Every figure the table supports, written into ``folder``; returns their paths."""
    paths = [effective_robustness(table, report, folder), accuracy_per_epoch(table, report, folder),
             feature_change(report, folder)]
    return [path for path in paths if path is not None]
