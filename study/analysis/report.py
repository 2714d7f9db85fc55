"""The study's report, drawn from the results table alone: trial counts and the selection tables."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.analysis.selection import OOD_AVG, RULES, Selection, ood_splits, select
from study.results import hparam_columns

METHOD_ORDER = ("lp", "ft", "lpft")
METHOD_NAMES = {"lp": "LP", "ft": "FT", "lpft": "LP-FT"}
RULE_TITLES = {"id_val": "Selected by ID validation (the paper's rule)",
               "ood_oracle": "Selected by OOD validation (the oracle ablation)"}
REPORT_DIR = "report"


def trial_counts(table: pd.DataFrame) -> dict[str, int]:
    outcomes = table.groupby("trial_id")["outcome"].first()
    return {"total": int(len(outcomes)), **{name: int((outcomes == name).sum())
                                            for name in ("finished", "diverged", "failed")}}


def selections(table: pd.DataFrame) -> dict[str, dict[str, Selection]]:
    methods = [m for m in METHOD_ORDER if m in set(table["method"])]
    methods += sorted(set(table["method"]) - set(methods))
    out = {}
    for rule in RULES:
        picked = {method: select(table, method, rule) for method in methods}
        out[rule] = {method: selection for method, selection in picked.items() if selection is not None}
    return out


def summary(table: pd.DataFrame) -> dict:
    """The report as one JSON-able object (accuracies in percent)."""
    chosen = selections(table)
    return {
        "study": str(table["study"].iloc[0]),
        "trials": trial_counts(table),
        "selection": {rule: {method: s.splits for method, s in picks.items()} for rule, picks in chosen.items()},
        "chosen": {rule: {method: {"config": s.config, "epoch": s.epoch, "criterion": s.criterion,
                                   "trial_ids": list(s.trial_ids)} for method, s in picks.items()}
                   for rule, picks in chosen.items()},
    }


def markdown(table: pd.DataFrame, report: dict) -> str:
    """Tables of mean ± std over seeds, one per selection rule."""
    tests = ood_splits(table, "test")
    columns = ["id_test", *tests, OOD_AVG]
    counts = report["trials"]
    lines = [f"# Study `{report['study']}`", "",
             f"Trials: {counts['total']} ({counts['finished']} finished, {counts['diverged']} diverged, "
             f"{counts['failed']} failed). Accuracy in %, mean ± sample std over seeds (n = seeds).", ""]
    for rule in RULES:
        lines += [f"## {RULE_TITLES[rule]}", "",
                  "| method | " + " | ".join(columns) + " | n | chosen (epoch) |",
                  "|---" * (len(columns) + 3) + "|"]
        for method, splits in report["selection"][rule].items():
            chosen = report["chosen"][rule][method]
            searched = _searched(table, method)
            config = ", ".join(f"{k}={_short(v)}" for k, v in chosen["config"].items() if k in searched)
            cells = [f"{splits[c]['mean']:.1f} ± {splits[c]['std']:.1f}" for c in columns]
            lines.append(f"| {METHOD_NAMES.get(method, method)} | " + " | ".join(cells) +
                         f" | {splits['id_test']['n']} | {config} ({chosen['epoch']}) |")
        lines.append("")
    return "\n".join(lines)


def _searched(table: pd.DataFrame, method: str) -> set[str]:
    """The hyper-parameters that take more than one value among ``method``'s trials."""
    rows = table[table["method"] == method]
    return {column for column in rows.columns if column in hparam_columns(rows) and rows[column].nunique() > 1}


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_report(study_dir: Path, table: pd.DataFrame) -> tuple[dict, str, Path]:
    """Write ``report/summary.json`` and ``report/report.md`` into the study folder; return them."""
    report = summary(table)
    text = markdown(table, report)
    folder = Path(study_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(text)
    return report, text, folder
