"""MLflow catching up with the results table, after a tracking server went away.

The results table is the study's record; MLflow is a view of it. While the server does not answer, the driver keeps
running the study (``MlflowTrialsCallback`` skips it, trying again every ``RETRY_S``) and writes the trials it could
not log to ``mlflow-pending.json`` in the study folder. ``catch_up`` then logs to MLflow, from the table, every epoch
those trials have that their child runs lack, their outcomes, and the report: the study does so when the server
answers again, at its end, and ``study report`` does so later. What is already logged is never logged twice (a
child run is found by its trial id, and only epochs after its last logged one are added).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from study import metric_keys
from study.config import short

PENDING = "mlflow-pending.json"
# how long a driver leaves an unreachable tracking server alone before trying it again
RETRY_S = float(os.environ.get("LPFT_MLFLOW_RETRY_S", "10"))


def run_name(method: str, hparams: dict, seed: int, searched: tuple[str, ...]) -> str:
    """A trial's child run name: its method, searched hyper-parameters and seed (``ft lr=0.03 seed0``)."""
    shown = ", ".join(f"{name}={short(hparams[name])}" for name in searched if name in hparams)
    return f"{method} {shown} seed{seed}"


def pending(study_dir: Path) -> dict:
    path = Path(study_dir) / PENDING
    return json.loads(path.read_text()) if path.is_file() else {"trials": [], "report": False}


def mark_pending(study_dir: Path, trial_ids=(), report: bool = False) -> None:
    """Add trials (and the report) to what MLflow is missing."""
    state = pending(study_dir)
    state["trials"] = sorted(set(state["trials"]) | set(trial_ids))
    state["report"] = state["report"] or report
    path = Path(study_dir) / PENDING
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    partial.write_text(json.dumps(state))
    os.replace(partial, path)


def clear_pending(study_dir: Path) -> None:
    (Path(study_dir) / PENDING).unlink(missing_ok=True)


def describe_missing(study_dir: Path, uri: str) -> str | None:
    """One line: what MLflow lacks of the study and the command that fills it in; None if nothing."""
    state = pending(study_dir)
    if not state["trials"] and not state["report"]:
        return None
    parts = [f"{len(state['trials'])} trial(s)' epochs"] if state["trials"] else []
    parts += ["the report"] if state["report"] else []
    return (f"MLflow at {uri} did not answer: it lacks {' and '.join(parts)} of this study (the results table holds "
            f"them all); `study report {study_dir}` logs them when it answers again")


def catch_up(tracker, study_dir: Path, seeds: tuple[int, ...], searched: dict[str, tuple[str, ...]],
             inputs: list, trial_ids=None) -> int:
    """Log what the pending trials (or ``trial_ids``) have in the results table and their child runs lack; returns
    how many epochs it logged. Raises whatever MLflow raises while the server does not answer."""
    from study.results import hparam_columns, table_dir
    import pandas as pd

    ids = pending(study_dir)["trials"] if trial_ids is None else list(trial_ids)
    logged = 0
    for trial_id in ids:
        part = table_dir(study_dir) / f"{trial_id}.parquet"
        if not part.is_file():
            continue
        frame = pd.read_parquet(part)
        outcome, rows = frame["outcome"].iloc[0], frame.drop(columns="outcome").to_dict("records")
        first = rows[0]
        names = [name for name in hparam_columns(frame) if frame[name].notna().all()]
        hparams = {name: first[name].item() if hasattr(first[name], "item") else first[name] for name in names}
        method, seed = first["method"], int(first["seed"])
        run_id = tracker.child_run(trial_id, run_name(method, hparams, seed, searched.get(method, ())),
                                   {"method": method, "seed": seed, **hparams},
                                   {"method": method, "seed": str(seed)}, inputs)
        last = tracker.last_logged_epoch(run_id)
        wise = _wise_rows(study_dir, trial_id)
        for epoch, metrics in sorted(metric_keys.from_rows(rows, wise, set(names)).items()):
            if epoch > last:
                chosen = [row["lp_l2"] for row in rows if row["epoch"] == epoch and row.get("lp_l2") == row.get(
                    "lp_l2")]
                tags = {"lp_l2": short(float(chosen[0]))} if chosen else {}
                tracker.log_epoch(run_id, metrics, epoch, int(time.time() * 1000), tags=tags)
                logged += 1
        if outcome != "running":
            tracker.end_child(run_id, outcome)
    return logged


def _wise_rows(study_dir: Path, trial_id: str) -> list[dict]:
    import pandas as pd

    from study.results import WISE_TABLE_DIR, table_dir

    part = table_dir(study_dir, WISE_TABLE_DIR) / f"{trial_id}.parquet"
    return pd.read_parquet(part).to_dict("records") if part.is_file() else []
