"""The study's report, drawn from its results tables alone: trial counts, the selection tables, the selected
models' feature change and calibration, and the WiSE-FT curves; as Markdown and as one self-contained HTML file."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from study.analysis.robustness import effective_robustness
from study.analysis.selection import (OOD_AVG, RULES, Selection, SmallVal, candidates_of, head_norm_of, headline,
                                      metric_of, ood_splits, paired_difference, select, wise_of)
from study.config import short
from study.methods.catalog import METHODS, label
from study.results import hparam_columns, read_soups, read_wise_table

RULE_TITLES = {"id_val": "Selected by ID validation (the paper's rule)",
               "ood_oracle": "Selected by OOD validation (the oracle ablation)",
               "small_ood_val": "Selected by a small OOD validation set ({k} labelled examples per class per domain)",
               "leave_one_domain_out": "Selected by leave-one-domain-out (one OOD domain's val, the others' tests)"}
RULE_NAMES = {"id_val": "ID val", "ood_oracle": "OOD oracle", "small_ood_val": "small OOD val",
              "leave_one_domain_out": "leave one domain out"}
REPORT_DIR = "report"
# What the models picked by ID validation look like beyond accuracy: (metric, title, scale for the table).
ANALYSIS = (("feature_change", "Feature change from the pretrained encoder, x100 (mean squared change relative to "
                               "the features' mean squared norm; LP's features are frozen)", 100.0),
            ("feature_cosine", "Feature change as mean cosine distance, x100", 100.0),
            ("ece", "Expected calibration error, % (15 bins)", 1.0),
            ("ece_ts", "Expected calibration error after temperature scaling (one temperature fitted on ID val), %",
             1.0),
            ("brier", "Brier score", 1.0))


def trial_counts(table: pd.DataFrame) -> dict[str, int]:
    outcomes = table.groupby("trial_id")["outcome"].first()
    return {"total": int(len(outcomes)), **{name: int((outcomes == name).sum())
                                            for name in ("finished", "diverged", "failed")}}


def selections(table: pd.DataFrame, small: SmallVal | None = None) -> dict[str, dict[str, Selection]]:
    """Every rule's selection of every method that has one; ``small``: the small-OOD-val rule's examples."""
    methods = [m for m in METHODS if m in set(table["method"])]
    methods += sorted(set(table["method"]) - set(methods))
    candidates = {method: candidates_of(table, method) for method in methods}  # pivoted once for every rule
    out = {}
    for rule in RULES:
        picked = {method: select(table, method, rule, small, candidates[method]) for method in methods}
        out[rule] = {method: selection for method, selection in picked.items() if selection is not None}
    return out


def unselected(table: pd.DataFrame, chosen: dict[str, Selection]) -> dict[str, str]:
    """Why each method of the table that has no selection has none, e.g. "all 3 trials diverged"."""
    out = {}
    for method in dict.fromkeys(table["method"]):
        if method in chosen:
            continue
        outcomes = table[table["method"] == method].groupby("trial_id")["outcome"].first().value_counts()
        if set(outcomes.index) <= {"diverged", "failed"} and len(outcomes) == 1:
            count = outcomes.sum()
            out[method] = f"all {count} trials {outcomes.index[0]}" if count > 1 else f"its trial {outcomes.index[0]}"
        else:
            counts = ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items())
            out[method] = f"no configuration finished on every seed ({counts})"
    return out


def describe_choice(pick: dict) -> str:
    """A selection's configuration and epoch as tables write them: "lr=0.03 (8)", or per held-out domain."""
    if pick.get("held_out"):
        return "; ".join(f"on {domain}: {choice}" for domain, choice in pick["held_out"].items())
    return ", ".join(f"{key}={short(value)}" for key, value in pick["config"].items()) + f" ({pick['epoch']})"


def rule_costs(chosen: dict[str, dict[str, Selection]]) -> dict[str, dict[str, dict]]:
    """Per rule and method: the test values it read, and its regret against the oracle (the oracle's OOD average
    minus its own; the oracle's own regret is 0)."""
    oracle = chosen.get("ood_oracle", {})
    return {rule: {method: {"test_reads": s.test_reads,
                            "regret": (oracle[method].splits[OOD_AVG]["mean"] - s.splits[OOD_AVG]["mean"]
                                       if method in oracle else None)}
                   for method, s in picks.items()} for rule, picks in chosen.items()}


def soup_summary(soups: pd.DataFrame | None, table: pd.DataFrame) -> dict:
    """Per method and kind of soup: each test split and the OOD average, mean, std and n over seeds, and the
    members it kept (mean over seeds) of how many."""
    if soups is None or soups.empty:
        return {}
    tests = ood_splits(table, "test")
    out: dict[str, dict] = {}
    for (method, kind), rows in soups.groupby(["method", "kind"], sort=False):
        wide = rows.pivot_table(index="seed", columns="split", values="accuracy")
        per_seed = wide[["id_test", *tests]].assign(**{OOD_AVG: wide[tests].mean(axis=1)})
        sizes = rows.drop_duplicates("seed")
        out.setdefault(method, {})[kind] = {**{split: {"mean": float(v.mean()), "n": int(v.count()),
                                                       "std": float(v.std(ddof=1)) if v.count() > 1 else 0.0}
                                               for split, v in per_seed.items()},
                                            "size": float(sizes["size"].mean()), "of": float(sizes["of"].mean())}
    return out


def summary(table: pd.DataFrame, wise: pd.DataFrame | None = None, small: SmallVal | None = None,
            soups: pd.DataFrame | None = None) -> dict:
    """The report as one JSON-able object (accuracies in percent; ``metric`` names what the tables hold).
    ``wise``: the study's WiSE-FT table, if any; ``small``: the small-OOD-val rule's labelled examples; ``soups``:
    the soups cooked from the sweep, if any."""
    chosen = selections(table, small)
    curves = {} if wise is None else {method: curve for method, s in chosen["id_val"].items()
                                      if (curve := wise_of(s, wise, table)) is not None}
    return {
        "study": str(table["study"].iloc[0]),
        "metric": headline(table).column,
        "trials": trial_counts(table),
        "selection": {rule: {method: s.splits for method, s in picks.items()} for rule, picks in chosen.items()},
        "chosen": {rule: {method: {"config": s.config, "epoch": s.epoch, "criterion": s.criterion,
                                   "trial_ids": list(s.trial_ids), **({"held_out": s.held_out} if s.held_out else {})}
                          for method, s in picks.items()}
                   for rule, picks in chosen.items()},
        "unselected": unselected(table, chosen["id_val"]),
        "analysis": {metric: {method: values for method, s in chosen["id_val"].items()
                              if (values := metric_of(s, table, metric)) is not None}
                     for metric, _, _ in ANALYSIS},
        "head_norm": {method: norms for method, s in chosen["id_val"].items()
                      if (norms := head_norm_of(s, table)) is not None},
        "paired": paired_against(chosen, table),
        "rules": rule_costs(chosen),
        "small_ood_val": {"k": small.k, "seed": small.seed} if small and small.labels else None,
        "effective_robustness": effective_robustness(table, chosen["id_val"]),
        "soups": soup_summary(soups, table),
        "wise": {method: [{"alpha": alpha, **splits} for alpha, splits in curve.items()]
                 for method, curve in curves.items()},
    }


BASELINE = "ft"  # what paired differences are taken against


def paired_against(chosen: dict[str, dict[str, Selection]], table: pd.DataFrame) -> dict:
    """Per rule, every selected method minus FT's selection, paired by seed (``paired_difference``)."""
    return {rule: {method: diff for method, s in picks.items()
                   if method != BASELINE and BASELINE in picks
                   and (diff := paired_difference(s, picks[BASELINE], table)) is not None}
            for rule, picks in chosen.items()}


CAPTIONS = {  # each figure's caption, and the table it sits after
    "accuracy_per_epoch": ("id_val", "ID-val and OOD-val accuracy per epoch of each method's configuration selected "
                                     "by ID val, from its starting point (epoch 0); band: one std over seeds; "
                                     "vertical lines: the epochs ID val (solid) and the oracle (dotted) picked."),
    "error_per_epoch": ("id_val", "ID-test and OOD-test error per epoch of the same configurations, log scale; band: "
                                  "one std over seeds."),
    "sensitivity": ("id_val", "Each hyper-parameter configuration (its epoch picked by ID val) against the "
                              "hyper-parameter searched most: ID val and the OOD test average, mean over seeds."),
    "effective_robustness": ("robustness", "Every trial and epoch, ID test against the OOD test average on logit "
                                           "axes (each seed a point); stars: the configurations selected by ID "
                                           "val; dashed: the fit effective robustness is measured from."),
    "pareto": ("robustness", "Every trial and epoch on linear axes with the front no point beats on both, the "
                             "WiSE-FT curves of the selected configurations (lines) and, where the study made them, "
                             "the soups (P greedy, X uniform)."),
    "feature_change": ("feature_change", "How far the selected models moved the pretrained features, ID test and "
                                         "OOD average, mean and one std over seeds."),
    "reliability": ("ece_ts", "Reliability diagrams of the selected models, ID test and the OOD tests pooled, before "
                              "and after temperature scaling (the seeds' bins summed)."),
    "wise_ft": ("wise", "WiSE-FT: ID test against the OOD average as alpha goes from 0 (the start) to 1 (the "
                        "fine-tuned model), mean over seeds."),
}


def markdown(table: pd.DataFrame, report: dict, figures: dict[str, str] | None = None) -> str:
    """The report: where it came from, one table of mean ± std over seeds per selection rule, the comparisons and
    measurements, each figure (``figures``: its name -> file) with its caption after the table it belongs to."""
    tests = ood_splits(table, "test")
    columns = ["id_test", *tests, OOD_AVG]
    counts, measure = report["trials"], headline(table)
    place = _Figures(figures or {})
    lines = [f"# Study `{report['study']}`", "", *_provenance(report),
             f"Trials: {counts['total']} ({counts['finished']} finished, {counts['diverged']} diverged, "
             f"{counts['failed']} failed). {measure.label}, mean ± sample std over seeds (n = seeds).", ""]
    for rule in RULES:
        title = RULE_TITLES[rule].format(k=(report.get("small_ood_val") or {}).get("k", "k"))
        why_not = _not_applied(rule, table, report)
        if why_not:
            lines += [f"## {title}", "", why_not, ""]
            continue
        lines += [f"## {title}", "",
                  "| method | " + " | ".join(columns) + " | n | chosen (epoch) |",
                  "|---" * (len(columns) + 3) + "|"]
        for method, splits in report["selection"][rule].items():
            chosen = report["chosen"][rule][method]
            cells = [_mean_std(splits[c], measure.column) if c in splits else "—" for c in columns]
            lines.append(f"| {label(method)} | " + " | ".join(cells) +
                         f" | {splits['id_test']['n']} | {describe_choice(_searched_only(chosen, table, method))} |")
        for method, why in report["unselected"].items():
            lines.append(f"| {label(method)} | " + " | ".join(["—"] * len(columns)) +
                         f" | 0 | none: {why} |")
        lines += (_soup_rows(report, columns, measure) if rule == "id_val" else []) + [""]
        lines += place.after(rule)
    lines += _rules_table(report, measure) + _robustness_table(report, measure) + place.after("robustness")
    lines += _paired_table(report, measure)
    for metric, section in _analysis_sections(report, columns):
        lines += section + place.after(metric)
    lines += _head_norm_table(report) + _wise_table(report, measure) + place.after("wise")
    return "\n".join(lines + place.rest())


class _Figures:
    """The report's figures, each placed once, numbered in order, with its caption and a link to its PDF."""

    def __init__(self, files: dict[str, str]):
        self.files, self.count = dict(files), 0

    def after(self, anchor: str) -> list[str]:
        return [line for stem in [s for s in self.files if CAPTIONS.get(s, ("", ""))[0] == anchor]
                for line in self._one(stem)]

    def rest(self) -> list[str]:
        return (["## Figures", ""] if self.files else []) + [line for stem in list(self.files)
                                                             for line in self._one(stem)]

    def _one(self, stem: str) -> list[str]:
        self.count += 1
        name = self.files.pop(stem)
        caption = CAPTIONS.get(stem, ("", stem))[1]
        return [f"![{stem}]({name})", "", f"Figure {self.count}. {caption} (PDF: `{Path(name).stem}.pdf`)", ""]


def _provenance(report: dict) -> list[str]:
    """Where the numbers come from: the searched grid, the seeds, the code, when, on what, and how long."""
    source = report.get("provenance") or {}
    if not source:
        return []
    grid = "; ".join(f"{label(method)}: " + ", ".join(f"{name} ∈ {{{', '.join(map(_plain_value, values))}}}"
                                                      for name, values in params.items())
                     for method, params in source.get("grid", {}).items())
    seeds = source.get("seeds", [])
    wall = source.get("wall_seconds")
    when = (source.get("created") or "")[:16].replace("T", " ")
    cluster = ", ".join(f"{value:g} {key}" for key, value in source.get("cluster", {}).items())
    machine = ", ".join(part for part in (source.get("cpu"), f"{source['cpus']} CPUs" if source.get("cpus") else None,
                                          f"the Ray cluster: {cluster}" if cluster else None) if part)
    return [f"Searched: {grid or 'one configuration per method'}.", "",
            f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}). Code: lpft-study {source.get('version')}, git "
            f"{(source.get('git_sha') or 'unknown')[:10]}. Run {when} on {source.get('host')}"
            + (f" ({machine})" if machine else "") + (f", {wall / 60:.1f} min of wall time." if wall else "."), ""]


def _plain_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def provenance(study_dir: Path) -> dict:
    """What the report's header says of a study folder: its config's grids and seeds, its manifest's code, host and
    wall time."""
    config, manifest = Path(study_dir) / "config.yaml", Path(study_dir) / "manifest.json"
    if not config.is_file():
        return {}
    resolved = yaml.safe_load(config.read_text()) or {}
    grid = {method: {name: value for name, value in params.items() if isinstance(value, list) and len(value) > 1}
            for method, params in (resolved.get("methods") or {}).items()}
    facts = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return {"grid": {method: params for method, params in grid.items() if params}, "seeds": resolved.get("seeds"),
            "version": (facts.get("packages") or {}).get("lpft-study"), "git_sha": facts.get("git_sha"),
            "created": facts.get("created"), "host": facts.get("host"), "cpu": facts.get("cpu"),
            "cpus": facts.get("cpus"), "cluster": facts.get("cluster", {}), "wall_seconds": facts.get("wall_seconds")}


def _searched_only(chosen: dict, table: pd.DataFrame, method: str) -> dict:
    """A choice with only the hyper-parameters the study varied (so the table says what was chosen among)."""
    if chosen.get("held_out"):
        return chosen
    searched = _searched(table, method)
    return {**chosen, "config": {k: v for k, v in chosen["config"].items() if k in searched}}


def _not_applied(rule: str, table: pd.DataFrame, report: dict) -> str | None:
    """Why ``rule`` selects nothing in this study whatever its trials did; None where it applies (a method with no
    selection then gets a row saying why, as under the paper's rule)."""
    domains = len(ood_splits(table, "val"))
    if rule == "ood_oracle" and not domains:
        return "Not applied: the study has no OOD val split."
    if rule == "leave_one_domain_out" and domains < 2:
        return (f"Not applied: the study has {domains} OOD domain; the rule selects on one and reports the "
                "others.")
    if rule == "small_ood_val" and not report.get("small_ood_val"):
        return ("Not applied: the table holds no per-example OOD val results (a regression study, or one run "
                "before it).")
    return None


def _soup_rows(report: dict, columns: list[str], measure) -> list[str]:
    """The soups as rows of a selection table: built from every trial of their method and seed, chosen by no
    rule (the greedy soup by ID val, as it cooks)."""
    return [f"| {label(method)} {kind} soup | " + " | ".join(_mean_std(splits[c], measure.column) for c in columns)
            + f" | {splits['id_test']['n']} | {splits['size']:.1f} of {splits['of']:.0f} trials |"
            for method, kinds in report.get("soups", {}).items() for kind, splits in kinds.items()]


def _rules_table(report: dict, measure) -> list[str]:
    """Every method under every rule: ID test / OOD average, and each rule's regret against the oracle."""
    rules = [rule for rule in RULES if report["selection"].get(rule)]
    methods = list(report["selection"]["id_val"])
    if len(rules) < 2 or not methods:
        return []
    lines = ["## Every method under every selection rule", "",
             f"ID test / OOD test average ({measure.label.lower()}, mean over seeds); regret: the oracle's OOD "
             "average minus the rule's; test reads: the test values the rule read, all of what it chose.", "",
             "| method | " + " | ".join(RULE_NAMES[rule] for rule in rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for method in methods:
        cells = []
        for rule in rules:
            splits, cost = report["selection"][rule].get(method), report["rules"][rule].get(method, {})
            if splits is None:
                cells.append("—")
                continue
            regret = "" if rule == "ood_oracle" or cost.get("regret") is None else \
                f" (regret {_number(cost['regret'], measure.column)})"
            cells.append(f"{_number(splits['id_test']['mean'], measure.column)} / "
                         f"{_number(splits[OOD_AVG]['mean'], measure.column)}{regret}")
        lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    for method, kinds in report.get("soups", {}).items():
        for kind, splits in kinds.items():
            cell = f"{_number(splits['id_test']['mean'], measure.column)} / {_number(splits[OOD_AVG]['mean'], measure.column)}"
            lines.append(f"| {label(method)} {kind} soup | " + " | ".join([cell] * len(rules)) + " |")
    reads = [str(sum(cost["test_reads"] for cost in report["rules"][rule].values())) for rule in rules]
    return lines + ["| test reads (all methods) | " + " | ".join(reads) + " |", ""]


def _robustness_table(report: dict, measure) -> list[str]:
    """Effective robustness: OOD accuracy above the logit-linear fit of OOD on ID over every trial."""
    robustness = report.get("effective_robustness") or {}
    if not robustness.get("methods"):
        return []
    fit = robustness["fit"]
    lines = ["## Effective robustness (ID-val selection)", "",
             f"Each method's OOD average minus what the fit over every trial and epoch predicts at its ID accuracy "
             f"(logit(OOD) = {fit['slope']:.3f} logit(ID) {fit['intercept']:+.3f}, over {fit['points']} points; the "
             "line in effective_robustness.png), in points of accuracy, mean ± std over seeds.", "",
             "| method | effective robustness | n |", "|---|---|---|"]
    for method, values in robustness["methods"].items():
        lines.append(f"| {label(method)} | {_signed(values['mean'], 'accuracy')} ± {values['std']:.1f} | "
                     f"{values['n']} |")
    return lines + [""]


def _mean_std(values: dict, metric: str) -> str:
    return f"{_number(values['mean'], metric)} ± {_number(values['std'], metric)}"


def _number(value: float, metric: str) -> str:
    """Accuracies with one decimal (percent); squared errors, which span decades, with three significant digits.
    A difference that rounds to nothing is 0.0, never -0.0."""
    if metric == "accuracy":
        return f"{round(value, 1) + 0.0:.1f}"
    return f"{value:.3g}"


def _paired_table(report: dict, measure) -> list[str]:
    """Each method minus FT, seed by seed, ID test and OOD average, under ID-val selection."""
    paired = report.get("paired", {}).get("id_val") or {}
    if not paired:
        return []
    lines = [f"## Paired differences against {label(BASELINE)}, seed by seed (ID-val selection)", "",
             f"Each method's selected configuration minus {label(BASELINE)}'s, on the same seeds ({measure.label.lower()}"
             "; positive: higher): mean ± sample std of the per-seed differences, [95 % bootstrap interval of the "
             "mean over seeds].", "", "| method | id_test | ood_avg | n |", "|---|---|---|---|"]
    for method, splits in paired.items():
        cells = [f"{_signed(v['mean'], measure.column)} ± {_number(v['std'], measure.column)} "
                 f"[{_signed(v['ci_low'], measure.column)}, {_signed(v['ci_high'], measure.column)}]"
                 for v in (splits["id_test"], splits[OOD_AVG])]
        lines.append(f"| {label(method)} − {label(BASELINE)} | " + " | ".join(cells) + f" | {splits[OOD_AVG]['n']} |")
    return lines + [""]


def _signed(value: float, metric: str) -> str:
    return ("+" if value > 0 else "") + _number(value, metric)


def _wise_table(report: dict, measure) -> list[str]:
    """WiSE-FT: ID test and OOD average accuracy (or squared error) along the interpolation, per method."""
    curves = report["wise"]
    if not curves:
        return []
    lines = ["## WiSE-FT: weights interpolated from the starting model (alpha 0) to the fine-tuned one (alpha 1)", "",
             "The ID-val-selected configuration of each method, interpolating to its trials' final weights. "
             f"ID test / OOD test average ({measure.label.lower()}), mean over seeds.", "",
             "| alpha | " + " | ".join(label(m) for m in curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for index, alpha in enumerate(point["alpha"] for point in next(iter(curves.values()))):
        cells = [f"{_number(curve[index]['id_test']['mean'], measure.column)} / "
                 f"{_number(curve[index][OOD_AVG]['mean'], measure.column)}" for curve in curves.values()]
        lines.append(f"| {alpha:g} | " + " | ".join(cells) + " |")
    return lines + [""]


def _analysis_sections(report: dict, columns: list[str]) -> list[tuple[str, list[str]]]:
    """(metric, its table) of the selected models' feature change and calibration, where the table has them."""
    sections = []
    for metric, title, scale in ANALYSIS:
        values = report["analysis"].get(metric) or {}
        if not values:
            continue
        lines = [f"## {title}", "", "Selected by ID validation.", "",
                 "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for method in report["selection"]["id_val"]:
            if method in values:
                cells = [f"{scale * values[method][c]['mean']:.2f} ± {scale * values[method][c]['std']:.2f}"
                         for c in columns]
            else:
                cells = ["0 (frozen)" if metric.startswith("feature") else "n/a"] * len(columns)
            lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
        sections.append((metric, lines + [""]))
    return sections


def _head_norm_table(report: dict) -> list[str]:
    """Tomihari & Sato's measure: the linear head's norm where fine-tuning starts and at the selected epoch (LP: its
    probe, an epoch-1 model; LP-FT and LP-LoRA start from LP's head, FT and LoRA from a new one)."""
    norms = report.get("head_norm") or {}
    if not norms:
        return []
    lines = ["## Linear-head norm (Frobenius), selected by ID validation", "",
             "| method | at the start (epoch 0) | at the selected epoch |", "|---|---|---|"]
    for method, values in norms.items():
        cells = [f"{values[k]['mean']:.2f} ± {values[k]['std']:.2f}" if k in values else "—"
                 for k in ("start", "selected")]
        lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _searched(table: pd.DataFrame, method: str) -> set[str]:
    """The hyper-parameters that take more than one value among ``method``'s trials; if none, the first one (its
    learning rate or L2 strength), so the table always says what was run."""
    rows = table[table["method"] == method]
    names = [column for column in hparam_columns(rows) if rows[column].notna().all()]
    return {name for name in names if rows[name].nunique() > 1} or set(names[:1])


VAL_LABELS = "val_labels.json"  # the OOD val splits' labels, written by the study at its start


def small_val(study_dir: Path) -> SmallVal | None:
    """The small-OOD-val rule's settings of a study folder: its OOD val labels, and ``selection`` in its config."""
    labels, config = Path(study_dir) / VAL_LABELS, Path(study_dir) / "config.yaml"
    if not labels.is_file():
        return None
    settings = (yaml.safe_load(config.read_text()) or {}).get("selection", {}) if config.is_file() else {}
    return SmallVal(k=settings.get("small_ood_k", SmallVal.k), seed=settings.get("seed", SmallVal.seed),
                    labels=json.loads(labels.read_text()))


def study_summary(study_dir: Path) -> dict:
    """A study folder's report as ``summary`` gives it, from its tables, nothing written."""
    from study.results import read_table

    return summary(read_table(study_dir), read_wise_table(study_dir), small_val(study_dir), read_soups(study_dir))


def write_report(study_dir: Path, table: pd.DataFrame, wise: pd.DataFrame | None = None) -> tuple[dict, str, Path]:
    """Write ``report/summary.json``, ``report/report.md``, ``report/report.html`` (self-contained) and the figures
    (PNG and PDF, each with its CSV) into the study folder; return the summary, the Markdown and the folder.
    ``wise``: the study's WiSE-FT table (default: read from the study folder)."""
    from study.analysis.html import to_html
    from study.analysis.plots import draw_all

    report = summary(table, read_wise_table(study_dir) if wise is None else wise, small_val(study_dir),
                     read_soups(study_dir))
    report["provenance"] = provenance(study_dir)
    folder = Path(study_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    figures = draw_all(table, report, folder)
    text = markdown(table, report, {path.stem: path.name for path in figures}).rstrip()
    (folder / "summary.json").write_text(json.dumps(report, indent=2))
    (folder / "report.md").write_text(text + "\n")
    (folder / "report.html").write_text(to_html(text, folder))
    return report, text, folder
