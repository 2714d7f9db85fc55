"""The flat keys of a trial's per-epoch report: the one module that writes them and reads them back.

    id_val/acc, ood_1_test/ece, ...   a split's metric (the train split holds only its loss: train/loss)
    extra/head_norm, extra/lp_l2      what a trial measures besides its splits
    wise/0.5/id_test/acc              WiSE-FT: a split's accuracy (or mse) at one interpolation alpha

A trial reports them to Ray; the results table and MLflow read them from what Ray received, so all three hold
the same numbers under the same names.
"""
from __future__ import annotations

from study.data import TRAIN

EXTRA = "extra"
WISE = "wise"


def key(part: str, metric: str) -> str:
    """``id_val/acc``, ``extra/lp_l2``: a split's (or the extras') metric."""
    return f"{part}/{metric}"


def encode(splits: dict[str, dict[str, float]], train_loss: float | None, extras: dict[str, float],
           wise: dict[float, dict[str, dict[str, float]]] | None) -> dict[str, float]:
    """One epoch's results as flat keys; ``wise`` keeps only each split's accuracy and squared error."""
    out = {key(split, name): value for split, values in splits.items() for name, value in values.items()}
    if train_loss is not None:
        out[key(TRAIN, "loss")] = train_loss
    out.update({key(EXTRA, name): value for name, value in extras.items()})
    for alpha, points in (wise or {}).items():
        out.update({f"{WISE}/{alpha:g}/{split}/{metric}": values[metric] for split, values in points.items()
                    for metric in ("acc", "mse") if metric in values})
    return out


def metrics(report: dict, scalars_only: bool = False) -> dict:
    """The study's own metrics among a Ray result's keys (Ray adds its own, none with a '/'); the reliability bins
    (lists) and the OOD val splits' per-example correctness (text) are not scalars, which MLflow
    (``scalars_only``) takes only."""
    kinds = (int, float) if scalars_only else (int, float, list, str)
    return {name: value for name, value in report.items() if "/" in name and isinstance(value, kinds)}


def per_split(report: dict) -> dict[str, dict]:
    """split -> {metric: value}, the train split's loss among them (neither the extras nor WiSE-FT)."""
    out: dict[str, dict] = {}
    for name, value in metrics(report).items():
        split, _, metric = name.partition("/")
        if split not in (EXTRA, WISE):
            out.setdefault(split, {})[metric] = value
    return out


def extras(report: dict) -> dict[str, float]:
    prefix = key(EXTRA, "")
    return {name[len(prefix):]: value for name, value in report.items() if name.startswith(prefix)}


def wise_points(report: dict) -> list[tuple[float, str, str, float]]:
    """WiSE-FT's (alpha, split, metric, value) in a report (none before a trial's last epoch)."""
    prefix = f"{WISE}/"
    return [(float(alpha), split, metric, value) for name, value in report.items() if name.startswith(prefix)
            for alpha, split, metric in [name[len(prefix):].split("/")]]


# Table columns that are a row's identity, not a metric; and the per-epoch facts a trial logs as tags, not metrics.
_NOT_METRICS = {"study", "trial_id", "stage", "method", "seed", "epoch", "split", "outcome", "alpha", "reliability",
                "reliability_ts", "correct"}
TAGGED = {"lp_l2"}
_EXTRAS = {"head_norm"}


def from_rows(rows: list[dict], wise_rows: list[dict] = (), hparams: set[str] = frozenset()) -> dict[int, dict]:
    """The flat scalar metrics of each epoch, as a trial logged them (``metrics(..., scalars_only=True)``), rebuilt
    from its results-table rows (``rows``) and WiSE-FT rows: what MLflow should hold of it. ``hparams``: the table's
    hyper-parameter columns, which are not metrics."""
    import math

    def scalar(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)

    out: dict[int, dict] = {}
    for row in rows:
        epoch, split = int(row["epoch"]), row["split"]
        if epoch < 0:
            continue
        metrics = out.setdefault(epoch, {})
        for column, value in row.items():
            if column in _NOT_METRICS or column in hparams or column in TAGGED or not scalar(value):
                continue
            if column in _EXTRAS:
                metrics[key(EXTRA, column)] = float(value)
            else:
                metrics[key(split, "acc" if column == "accuracy" else column)] = float(value)
    for row in wise_rows:
        for metric, column in (("acc", "accuracy"), ("mse", "mse")):
            if scalar(row.get(column)):
                out.setdefault(int(row["epoch"]), {})[f"{WISE}/{row['alpha']:g}/{row['split']}/{metric}"] = float(
                    row[column])
    return out
