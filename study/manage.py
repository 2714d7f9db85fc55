"""The commands around studies: list them, delete one, plan one without running it, compare two, export the
selection tables as a paper uses them. Each reads what a study wrote (its folder, its MLflow experiment); none
starts Ray."""
from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import yaml

from study.analysis.report import RULE_NAMES, describe_choice
from study.analysis.selection import OOD_AVG, RULES
from study.config import StudyConfig, load_config
from study.methods.catalog import label
from study.tune.lock import LOCK_FILE, StudyBusy, is_locked

CONFIG_FILE = "config.yaml"
FORMATS = ("csv", "latex", "json")


def study_folders(root: Path) -> list[Path]:
    """The study folders under a results root (each holds a ``config.yaml``), by name."""
    root = Path(root)
    return sorted(folder for folder in root.iterdir() if (folder / CONFIG_FILE).is_file()) if root.is_dir() else []


def describe_folder(folder: Path) -> dict:
    """A study folder's name, status (running, finished, stopped, not started), trials and creation date."""
    from study.results import read_table, table_dir
    from study.tune.spaces import trial_count

    study = load_config(folder / CONFIG_FILE)
    expected = trial_count(study)
    parts = list(table_dir(folder).glob("*.parquet")) if table_dir(folder).is_dir() else []
    outcomes = {}
    if parts:
        table = read_table(folder, [])
        outcomes = table.groupby("trial_id")["outcome"].first().value_counts().to_dict()
    ended = sum(count for outcome, count in outcomes.items() if outcome != "running")
    status = ("running" if is_locked(folder) else "not started" if not parts else
              "finished" if ended >= expected else "stopped")
    manifest = folder / "manifest.json"
    created = (json.loads(manifest.read_text()).get("created", "")[:16].replace("T", " ") if manifest.is_file() else
               time.strftime("%Y-%m-%d %H:%M", time.localtime((folder / CONFIG_FILE).stat().st_mtime)))
    return {"name": study.name, "status": status, "trials": f"{ended} of {expected}",
            "finished": int(outcomes.get("finished", 0)), "benchmark": study.benchmark, "backbone": study.backbone,
            "created": created, "folder": str(folder)}


def list_from_mlflow(uri: str) -> list[dict]:
    """The studies an MLflow store holds: each experiment with a study's parent run."""
    from mlflow.tracking import MlflowClient

    client, rows = MlflowClient(uri), []
    for experiment in client.search_experiments():
        parents = client.search_runs([experiment.experiment_id], "tags.lpft_role = 'study'", max_results=1)
        if not parents:
            continue
        parent = parents[0]
        children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = "
                                      f"'{parent.info.run_id}'", max_results=50000)
        rows.append({"name": experiment.name, "status": parent.info.status.lower(), "trials": str(len(children)),
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(parent.info.start_time / 1000)),
                     "benchmark": parent.data.params.get("benchmark", ""),
                     "backbone": parent.data.params.get("backbone", ""), "folder": ""})
    return rows


def table_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """Rows as an aligned plain-text table."""
    widths = {c: max([len(c), *(len(str(row[c])) for row in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(row[c]).ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def deletion_targets(folder: Path) -> tuple[StudyConfig, list[str]]:
    """A study's configuration and what deleting it removes: its folder, its checkpoints' storage (where that is
    elsewhere), its MLflow experiment."""
    from study.tracking import tracking_uri

    study = load_config(Path(folder) / CONFIG_FILE)
    targets = [f"the folder {folder}"]
    if study.storage:
        targets.append(f"the checkpoints under {study.storage_root}")
    targets.append(f"the MLflow experiment {study.name!r} in {tracking_uri(study)}")
    return study, targets


def delete_study(folder: Path) -> list[str]:
    """Remove a study's folder, storage and MLflow experiment; refuses a study that is running. Returns what was
    removed."""
    from study.tracking import tracking_uri

    folder = Path(folder)
    if is_locked(folder):
        raise StudyBusy(f"{folder}: the study is running now; stop it (Ctrl-C, or SIGTERM to its driver) before "
                        "deleting it")
    study, _ = deletion_targets(folder)
    removed = []
    if study.storage:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(study.storage_root)
        if filesystem.get_file_info(path).type != fs.FileType.NotFound:
            filesystem.delete_dir(path)
            removed.append(study.storage_root)
    uri = tracking_uri(study)
    if (experiment := _experiment(uri, study.name)) is not None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        # MLflow keeps a deleted experiment's name reserved: renamed first, the name is free for a new study
        client.rename_experiment(experiment.experiment_id, f"{study.name}-deleted-{int(time.time())}")
        client.delete_experiment(experiment.experiment_id)
        removed.append(f"MLflow experiment {study.name!r}")
    (folder / LOCK_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder)
    removed.append(str(folder))
    return removed


def _experiment(uri: str, name: str):
    from mlflow.tracking import MlflowClient

    from study.tracking import _local_store_exists

    if not _local_store_exists(uri):
        return None
    return MlflowClient(uri).get_experiment_by_name(name)


def plan_text(study: StudyConfig) -> str:
    """What ``study run`` would do: the resolved config and the trials per method; nothing is started."""
    from study.tune.spaces import grid_points, trial_count

    counts: dict[str, int] = {}
    if study.search.algorithm == "grid":
        for point in grid_points(study):
            counts[point["method"]] = counts.get(point["method"], 0) + 1
    lines = [f"# study {study.name}: {trial_count(study)} trials on {len(study.seeds)} seed(s), "
             f"{study.search.algorithm} search"]
    lines += [f"#   {label(method):<14} {count:>5} trials" for method, count in counts.items()]
    if study.search.algorithm != "grid":
        lines.append(f"#   {study.search.num_samples} sampled configurations x {len(study.seeds)} seeds")
    return "\n".join(lines) + "\n" + yaml.safe_dump(study.to_dict(), sort_keys=False)


def compare_text(first: dict, second: dict) -> str:
    """Two studies' selection tables side by side (ID test, OOD average), with the differences (second minus
    first)."""
    lines = [f"# `{first['study']}` against `{second['study']}`", ""]
    for rule in RULES:
        a, b = first["selection"].get(rule, {}), second["selection"].get(rule, {})
        methods = [m for m in a if m in b] + [m for m in a if m not in b] + [m for m in b if m not in a]
        if not methods:
            continue
        lines += [f"## {RULE_NAMES[rule]}", "",
                  f"| method | {first['study']}: ID / OOD | {second['study']}: ID / OOD | difference: ID / OOD |",
                  "|---|---|---|---|"]
        for method in methods:
            cells = [_pair(side.get(method)) for side in (a, b)]
            if method in a and method in b:
                delta = [b[method][key]["mean"] - a[method][key]["mean"] for key in ("id_test", OOD_AVG)]
                cells.append(f"{delta[0]:+.1f} / {delta[1]:+.1f}")
            else:
                cells.append("—")
            lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _pair(splits: dict | None) -> str:
    if splits is None:
        return "—"
    return (f"{splits['id_test']['mean']:.1f} ± {splits['id_test']['std']:.1f} / {splits[OOD_AVG]['mean']:.1f} ± "
            f"{splits[OOD_AVG]['std']:.1f}")


def export_rows(report: dict) -> list[dict]:
    """The selection tables as rows: rule, method, split, mean, std, n, the chosen configuration."""
    rows = []
    for rule in RULES:
        for method, splits in report["selection"].get(rule, {}).items():
            chosen = describe_choice(report["chosen"][rule][method])
            rows += [{"rule": rule, "method": method, "label": label(method), "split": split, "mean": values["mean"],
                      "std": values["std"], "n": values["n"], "chosen": chosen} for split, values in splits.items()]
    return rows


def export_text(report: dict, fmt: str) -> str:
    """The selection tables in ``fmt``: csv (one row per rule, method and split), json, or latex (one booktabs
    table per rule, mean ± std, as a paper prints it)."""
    rows = export_rows(report)
    if fmt == "json":
        return json.dumps({"study": report["study"], "metric": report["metric"], "rows": rows}, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["rule"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return _latex(report)


def _latex(report: dict) -> str:
    blocks = []
    for rule in RULES:
        picks = report["selection"].get(rule, {})
        if not picks:
            continue
        splits = list(next(iter(picks.values())))
        header = " & ".join(["Method", *(s.replace("_", r"\_") for s in splits)])
        body = [" & ".join([label(method).replace("_", r"\_"),
                            *(f"${values[s]['mean']:.1f} \\pm {values[s]['std']:.1f}$" for s in splits)]) + r" \\"
                for method, values in picks.items()]
        blocks.append("\n".join([r"\begin{table}[t]", r"\centering",
                                 rf"\caption{{{report['study']}: selected by {RULE_NAMES[rule]} (accuracy, \%, mean "
                                 rf"$\pm$ std over seeds)}}",
                                 rf"\begin{{tabular}}{{l{'r' * len(splits)}}}", r"\toprule", header + r" \\",
                                 r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]))
    return "\n\n".join(blocks) + "\n"
