"""The report's figures, drawn from the results table alone; each PNG has the CSV of what it plots beside it.

- ``effective_robustness.png``: ID-test vs OOD-average accuracy of every (trial, epoch >= 1), on logit-scaled axes
  (where accuracies under a shift tend to lie on a line), coloured by method, the ID-val-selected models marked,
  and the line fitted through them that effective robustness is measured from.
- ``pareto.png``: the same points on linear axes, the front no other point beats on both, the WiSE-FT curves of
  the selected configurations and the soups of the sweep.
- ``accuracy_per_epoch.png``: ID-val and OOD-val accuracy per epoch of each method's selected configuration, from
  its starting point (epoch 0), mean and a band of one std over seeds, with the epochs picked by ID val and by the
  oracle.
- ``error_per_epoch.png``: the same configurations' ID-test and OOD-test error per epoch, log scale (on the
  theory's toy, the error curves of its section 3).
- ``feature_change.png``: the selected models' feature change, ID test vs OOD test average.
- ``sensitivity.png``: per method, each hyper-parameter configuration's ID-val and OOD-test accuracy (its epoch
  picked by ID val) against its searched hyper-parameter.
- ``reliability.png``: reliability diagrams of the selected models, ID test and the OOD tests pooled, before and
  after temperature scaling.
- ``wise_ft.png``: the WiSE-FT curves, ID test vs OOD average as alpha goes from 0 to 1.

Every figure is also saved as a PDF beside its PNG, for a paper.

A regression study (the toy with the squared loss) gets the figures that do not need accuracy or confidence:
``error_per_epoch.png`` (its mean squared error), ``feature_change.png`` and ``sensitivity.png``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from study.analysis.robustness import every_point, logit  # noqa: E402
from study.analysis.selection import (ACCURACY, OOD_AVG, headline, ood_splits, per_configuration,  # noqa: E402
                                      selected_rows)
from study.methods.catalog import METHODS, colour, label  # noqa: E402
from study.methods.metrics import ECE_BINS  # noqa: E402


def effective_robustness(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    points = every_point(table)
    chosen = report["chosen"]["id_val"]
    points["selected"] = [trial in chosen.get(method, {}).get("trial_ids", ()) and epoch == chosen[method]["epoch"]
                          for trial, method, epoch in zip(points["trial_id"], points["method"], points["epoch"])]
    points.to_csv(folder / "effective_robustness.csv", index=False)
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    for method, group in points.groupby("method"):
        axes.scatter(logit(group["id_test"]), logit(group["ood_avg"]), s=10, alpha=0.35,
                     color=colour(method), label=label(method))
        picked = group[group["selected"]]
        axes.scatter(logit(picked["id_test"]), logit(picked["ood_avg"]), s=70, marker="*", edgecolor="black",
                     color=colour(method))
    fit = (report.get("effective_robustness") or {}).get("fit")
    if fit:  # the line effective robustness is measured from
        span = np.linspace(logit(points["id_test"]).min(), logit(points["id_test"]).max(), 50)
        axes.plot(span, fit["slope"] * span + fit["intercept"], "k--", linewidth=1, label="fit over every trial")
    ticks = np.array([50, 70, 80, 90, 95, 98, 99])
    axes.set_xticks(logit(ticks), [f"{t}" for t in ticks])
    axes.set_yticks(logit(ticks), [f"{t}" for t in ticks])
    axes.set(xlabel="ID test accuracy (%, logit scale)", ylabel="OOD test accuracy, average (%, logit scale)",
             title="Every trial and epoch; stars: selected by ID val")
    axes.legend(fontsize=7)
    return _save(figure, folder / "effective_robustness.png")


def pareto(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    """ID against OOD accuracy of every trial and epoch, the front no other point beats on both, the WiSE-FT curves
    of the ID-val-selected configurations and the soups."""
    points = every_point(table)
    ordered = points.sort_values(["id_test", "ood_avg"], ascending=False)
    front = ordered[ordered["ood_avg"] > ordered["ood_avg"].cummax().shift(fill_value=-np.inf)]
    front.assign(front=True).to_csv(folder / "pareto.csv", index=False)
    figure, axes = plt.subplots(figsize=(6.5, 5))
    for method, group in points.groupby("method"):
        axes.scatter(group["id_test"], group["ood_avg"], s=8, alpha=0.3, color=colour(method), label=label(method))
    axes.step(front["id_test"], front["ood_avg"], "k-", where="post", linewidth=1, label="Pareto front")
    for method, curve in report.get("wise", {}).items():
        axes.plot([point["id_test"]["mean"] for point in curve], [point[OOD_AVG]["mean"] for point in curve], "-",
                  color=colour(method), linewidth=1.5)
    for method, kinds in (report.get("soups") or {}).items():
        for kind, splits in kinds.items():
            axes.scatter(splits["id_test"]["mean"], splits[OOD_AVG]["mean"], s=90,
                         marker="P" if kind == "greedy" else "X", color=colour(method), edgecolor="black")
    shown = points[points["id_test"] >= 50]
    if not shown.empty:  # a new random head at chance would squeeze the models that classify
        axes.set_xlim(shown["id_test"].min() - 1, shown["id_test"].max() + 1)
    axes.set(xlabel="ID test accuracy (%)", ylabel="OOD test accuracy, average (%)",
             title="Every trial and epoch, the front, WiSE-FT curves (lines)"
                   + (", soups (P greedy, X uniform)" if report.get("soups") else ""))
    axes.title.set_fontsize(8)
    axes.legend(fontsize=7)
    return _save(figure, folder / "pareto.png")


def _per_epoch(table: pd.DataFrame, report: dict, part: str) -> pd.DataFrame:
    """The headline metric per epoch of each method's ID-val-selected configuration, from its starting point (epoch
    0) on: ID and the OOD average of one ``part`` (val or test), mean and std over seeds."""
    ood = ood_splits(table, part)
    rows = table[table["split"].isin([f"id_{part}", *ood])]
    curves = []
    for method, pick in report["chosen"]["id_val"].items():
        wide = rows[rows["trial_id"].isin(pick["trial_ids"])].pivot_table(index=["epoch", "seed"], columns="split",
                                                                         values=headline(table).column)
        seeds = pd.DataFrame({f"id_{part}": wide[f"id_{part}"], f"ood_{part}_avg": wide[ood].mean(axis=1)})
        stats = seeds.groupby(level="epoch").agg(["mean", "std"]).fillna(0.0)
        curves.append(pd.DataFrame({"method": method, "epoch": stats.index,
                                    **{name: stats[(name, "mean")].values for name in seeds},
                                    **{f"{name}_std": stats[(name, "std")].values for name in seeds}}))
    return pd.concat(curves, ignore_index=True)


def _id_and_ood_curves(data: pd.DataFrame, columns: tuple[str, str]):
    """Two panels (ID, OOD) of one line per method over epochs (a dashed level for a one-epoch method, LP);
    returns the figure and its axes."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for method, group in data.groupby("method", sort=False):
        for axis, column in zip(axes, columns):
            style = dict(color=colour(method), label=label(method))
            if len(group) == 1:
                axis.axhline(group[column].item(), linestyle="--", **style)
            else:  # the band: one std over seeds either side
                axis.plot(group["epoch"], group[column], marker="o", **style)
                if f"{column}_std" in group:
                    axis.fill_between(group["epoch"], group[column] - group[f"{column}_std"],
                                      group[column] + group[f"{column}_std"], color=colour(method), alpha=0.15)
    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend()
    return figure, axes


def accuracy_per_epoch(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    data = _per_epoch(table, report, "val")
    data.to_csv(folder / "accuracy_per_epoch.csv", index=False)
    figure, axes = _id_and_ood_curves(data, ("id_val", "ood_val_avg"))
    for method, group in data.groupby("method"):
        for rule, style in (("id_val", "-"), ("ood_oracle", ":")):
            epoch = report["chosen"][rule].get(method, {}).get("epoch")
            if epoch is not None and group["epoch"].nunique() > 1:
                for axis in axes:
                    axis.axvline(epoch, color=colour(method), linestyle=style, alpha=0.6)
    axes[0].set(title="ID val", xlabel="epoch", ylabel="accuracy (%)")
    axes[1].set(title="OOD val average", xlabel="epoch")
    figure.suptitle("Selected configurations from their start (epoch 0), ± one std over seeds; lines: epoch picked by "
                    "ID val (solid), by the oracle (dotted)", fontsize=9)
    return _save(figure, folder / "accuracy_per_epoch.png")


def error_per_epoch(table: pd.DataFrame, report: dict, folder: Path) -> Path:
    data, measure = _per_epoch(table, report, "test"), headline(table)
    if measure == ACCURACY:
        data = data.assign(id_test_error=100 - data["id_test"], ood_test_error=100 - data["ood_test_avg"])
    else:
        data = data.assign(id_test_error=data["id_test"], ood_test_error=data["ood_test_avg"])
    data = data.assign(id_test_error_std=data["id_test_std"], ood_test_error_std=data["ood_test_avg_std"])
    data.to_csv(folder / "error_per_epoch.csv", index=False)
    figure, axes = _id_and_ood_curves(data, ("id_test_error", "ood_test_error"))
    unit = "error (%, log scale)" if measure == ACCURACY else "mean squared error (log scale)"
    axes[0].set(title="ID test", xlabel="epoch", ylabel=unit, yscale="log")
    axes[1].set(title="OOD test average", xlabel="epoch", yscale="log")
    figure.suptitle("Test error per epoch of the configurations selected by ID val, from their start (epoch 0); mean "
                    "± one std over seeds", fontsize=9)
    return _save(figure, folder / "error_per_epoch.png")


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
    axes.set_xticks(np.arange(len(methods)), [label(m) for m in methods])
    axes.set(ylabel="feature change x100", title="How far the selected models moved the features")
    axes.legend()
    return _save(figure, folder / "feature_change.png")


def sensitivity(table: pd.DataFrame, folder: Path) -> Path | None:
    rows = []
    for method in [m for m in METHODS if m in set(table["method"])]:
        for pick in per_configuration(table, method):
            rows.append({"method": method, **pick.config, "epoch": pick.epoch, "id_val": pick.criterion,
                         "id_test": pick.splits["id_test"]["mean"], "ood_test_avg": pick.splits[OOD_AVG]["mean"]})
    data = pd.DataFrame(rows)
    swept = {method: _swept(data[data["method"] == method]) for method in dict.fromkeys(data.get("method", []))}
    swept = {method: name for method, name in swept.items() if name}
    if not swept:
        return None
    data.to_csv(folder / "sensitivity.csv", index=False)
    columns = min(5, len(swept))
    rows_of_panels = -(-len(swept) // columns)
    figure, axes = plt.subplots(rows_of_panels, columns, figsize=(3.6 * columns, 3.6 * rows_of_panels),
                                squeeze=False)
    for axis, (method, name) in zip(axes.flat, swept.items()):
        group = data[data["method"] == method].sort_values(name)
        for column, style in (("id_val", "-o"), ("ood_test_avg", "--s")):
            axis.plot(group[name], group[column], style, color=colour(method),
                      label="ID val" if column == "id_val" else "OOD test avg")
        numeric = pd.api.types.is_numeric_dtype(group[name])  # a block group is a name, not a number
        axis.set(xscale="log" if numeric else "linear", xlabel=name, title=label(method))
    for axis in list(axes.flat)[len(swept):]:
        axis.set_visible(False)
    axes[0][0].set_ylabel(f"{headline(table).label.lower()}, epoch picked by ID val")
    axes[0][0].legend()
    figure.suptitle("Hyper-parameter sensitivity (mean over seeds)")
    return _save(figure, folder / "sensitivity.png")


def _swept(group: pd.DataFrame) -> str | None:
    """The hyper-parameter with the most values in a method's configurations (its learning rate or L2)."""
    counts = {name: group[name].nunique() for name in group.columns
              if name not in ("method", "epoch", "id_val", "id_test", "ood_test_avg") and group[name].notna().all()}
    name = max(counts, key=counts.get, default=None)
    return name if name and counts[name] > 1 else None


def _reliability_bins(table: pd.DataFrame, report: dict) -> pd.DataFrame:
    """Per selected model, inputs (ID test, OOD tests pooled) and temperature scaling: each non-empty bin's count,
    mean confidence and accuracy (%), the seeds' bins summed."""
    groups = (("ID test", ["id_test"]), ("OOD test (pooled)", ood_splits(table, "test")))
    rows = []
    for method, pick in report["chosen"]["id_val"].items():
        chosen = selected_rows(table, pick["trial_ids"], pick["epoch"])
        for inputs, splits in groups:
            for column, scaled in (("reliability", False), ("reliability_ts", True)):
                sums = np.stack(chosen[chosen["split"].isin(splits)][column].to_list()).sum(0)
                count, confidence, correct = sums.reshape(3, ECE_BINS)
                rows += [{"method": method, "inputs": inputs, "temperature_scaled": scaled, "bin": index,
                          "count": count[index], "confidence": 100 * confidence[index] / count[index],
                          "accuracy": 100 * correct[index] / count[index]} for index in np.flatnonzero(count)]
    return pd.DataFrame(rows)


def reliability(table: pd.DataFrame, report: dict, folder: Path) -> Path | None:
    if "reliability" not in table.columns:
        return None
    data = _reliability_bins(table, report)
    data.to_csv(folder / "reliability.csv", index=False)
    methods = list(report["chosen"]["id_val"])
    figure, axes = plt.subplots(2, len(methods), figsize=(3.2 * len(methods), 6.4), squeeze=False, sharex=True,
                                sharey=True)
    for column, method in enumerate(methods):
        for row, inputs in enumerate(("ID test", "OOD test (pooled)")):
            axis = axes[row][column]
            axis.plot([0, 100], [0, 100], color="grey", linewidth=0.8)
            for scaled, style in ((False, "-o"), (True, "--s")):
                part = data[(data["method"] == method) & (data["inputs"] == inputs)
                            & (data["temperature_scaled"] == scaled)]
                axis.plot(part["confidence"], part["accuracy"], style, markersize=3, color=colour(method),
                          label="temperature-scaled" if scaled else "as trained")
            axis.set(title=f"{label(method)}: {inputs}", xlim=(0, 100), ylim=(0, 100))
        axes[1][column].set_xlabel("confidence (%)")
    for row in axes:
        row[0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=7)
    figure.suptitle("Reliability diagrams of the models selected by ID val (15 bins, seeds pooled)")
    return _save(figure, folder / "reliability.png")


def wise_ft(report: dict, folder: Path) -> Path | None:
    curves = report["wise"]
    if not curves:
        return None
    data = pd.DataFrame([{"method": method, "alpha": point["alpha"], "id_test": point["id_test"]["mean"],
                          "ood_test_avg": point[OOD_AVG]["mean"]}
                         for method, curve in curves.items() for point in curve])
    data.to_csv(folder / "wise_ft.csv", index=False)
    figure, axes = plt.subplots(figsize=(6.5, 5))
    for method, group in data.groupby("method", sort=False):
        axes.plot(group["id_test"], group["ood_test_avg"], "-o", color=colour(method),
                  label=label(method))
        for alpha, x, y in zip(group["alpha"], group["id_test"], group["ood_test_avg"]):
            axes.annotate(f"{alpha:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    # A start with a new random head (FT, LoRA) sits at chance; the axes zoom on the models that classify.
    shown = data[data["id_test"] >= 50]
    if not shown.empty:
        axes.set_xlim(shown["id_test"].min() - 1, shown["id_test"].max() + 1)
        axes.set_ylim(shown["ood_test_avg"].min() - 1, shown["ood_test_avg"].max() + 1)
    hidden = data[data["id_test"] < 50]
    note = f"; not shown: {len(hidden)} points below 50% ID (a new random head)" if len(hidden) else ""
    axes.set(xlabel="ID test accuracy (%)", ylabel="OOD test accuracy, average (%)",
             title=f"WiSE-FT, labels: alpha (0 = start, 1 = fine-tuned){note}")
    axes.title.set_fontsize(8)
    axes.legend()
    return _save(figure, folder / "wise_ft.png")


def _save(figure, path: Path) -> Path:
    """The figure as a PNG (the reports') and a PDF (a paper's), side by side."""
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    figure.savefig(path.with_suffix(".pdf"))
    plt.close(figure)
    return path


def draw_all(table: pd.DataFrame, report: dict, folder: Path) -> list[Path]:
    """Every figure the table supports, written into ``folder``; returns their paths (none if no method has a
    selected configuration)."""
    if not report["chosen"]["id_val"]:
        return []
    if headline(table) != ACCURACY:
        paths = [error_per_epoch(table, report, folder), feature_change(report, folder), sensitivity(table, folder)]
        return [path for path in paths if path is not None]
    paths = [effective_robustness(table, report, folder), pareto(table, report, folder),
             accuracy_per_epoch(table, report, folder), error_per_epoch(table, report, folder),
             feature_change(report, folder), sensitivity(table, folder), reliability(table, report, folder),
             wise_ft(report, folder)]
    return [path for path in paths if path is not None]
