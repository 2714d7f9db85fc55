"""The `study` command: run a study, resume it, confirm its selections on new seeds, redraw its report.

    study run search_spaces/quickstart.yaml          run a study (Ray Tune, logged to MLflow), print its tables
    study run search_spaces/smoke.yaml --set seeds=[0,1] --name smoke2
    study plan search_spaces/quickstart.yaml         the resolved config and the trials per method; nothing runs
    study resume results/quickstart                  continue a study whose driver stopped (crash, Ctrl-C, preemption)
    study confirm results/quickstart --seeds 5       rerun each method's selected configuration on 5 new seeds
    study soup results/methods                       the uniform and greedy soups of each method's trials
    study report results/quickstart                  redraw the report (tables, figures, report.html), no rerun
    study report results/quickstart --json           the same as one JSON object
    study list results                               the studies under a results root: status, trials, date
    study compare results/quickstart results/quick2  two studies' selection tables side by side
    study export results/quickstart --format latex   the selection tables as a paper prints them (csv, json too)
    study delete quick2 --results-dir results        its folder, checkpoints and MLflow experiment, after a yes
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.command(args)
    except UserError as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted before the study started: nothing was run", file=sys.stderr)
        return EXIT_INTERRUPTED


class UserError(Exception):
    """Bad input: printed as one line per problem, exit code 2, no traceback."""


def study_from_args(args):
    """The validated StudyConfig that `study run` arguments describe."""
    from study.config import ConfigError, load_config

    try:
        return load_config(args.config, args.set, name=args.name, results_dir=args.results_dir,
                           tracking_uri=args.tracking_uri, cache_dir=args.cache_dir, data_root=args.data_root,
                           backbone_weights=args.weights, system_metrics=args.system_metrics or None)
    except ConfigError as error:
        raise UserError(str(error)) from None


def _run(args) -> int:
    study = study_from_args(args)
    if args.dry_run:
        return _plan(args)
    from study.tune.runner import run_study

    return _until_report(lambda: (*run_study(study, progress=not args.no_progress), study), args)


def _moved(args) -> dict:
    """Where a study's store and cache are now, if not where it ran (``--tracking-uri``, ``--cache-dir``)."""
    return {key: value for key, value in (("tracking_uri", args.tracking_uri), ("cache_dir", args.cache_dir))
            if value is not None}


def _resume(args) -> int:
    from study.tune.runner import resume_study

    folder = _study_folder(args.study_dir)
    return _until_report(lambda: resume_study(folder, progress=not args.no_progress, **_moved(args)), args)


def _confirm(args) -> int:
    from study.tune.confirm import confirm_study

    folder = _study_folder(args.study_dir)
    return _until_report(lambda: confirm_study(folder, args.seeds, progress=not args.no_progress, **_moved(args)),
                         args)


def _plan(args) -> int:
    from study.manage import plan_text

    print(plan_text(study_from_args(args)), end="")
    return 0


def _list(args) -> int:
    from study.manage import describe_folder, list_from_mlflow, study_folders, table_text

    if args.tracking_uri:
        rows = _user_errors(lambda: list_from_mlflow(args.tracking_uri))
    else:
        root = Path(args.results_dir)
        if not root.is_dir():
            raise UserError(f"{root}: no such results root; pass the folder `study run --results-dir` wrote to")
        rows = [describe_folder(folder) for folder in study_folders(root)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(table_text(rows, ("name", "status", "trials", "benchmark", "backbone", "created")))
    else:
        print("no studies", file=sys.stderr)
    return 0


def _delete(args) -> int:
    from study.manage import deletion_targets, delete_study

    folder = Path(args.results_dir) / args.name
    if not (folder / "config.yaml").is_file():
        raise UserError(f"{folder}: no study named {args.name!r} there; `study list {args.results_dir}` shows them")
    _, targets = _user_errors(lambda: deletion_targets(folder))
    if not args.yes:
        print("This deletes " + "; ".join(targets) + ".", file=sys.stderr)
        if input(f"Type the study's name ({args.name}) to delete it: ").strip() != args.name:
            print("nothing deleted", file=sys.stderr)
            return EXIT_USAGE
    for removed in _user_errors(lambda: delete_study(folder)):
        print(f"deleted {removed}", file=sys.stderr)
    return 0


def _compare(args) -> int:
    from study.analysis.report import study_summary
    from study.manage import compare_text

    reports = [_user_errors(lambda: study_summary(_study_folder(path))) for path in (args.first, args.second)]
    print(compare_text(*reports))
    return 0


def _export(args) -> int:
    from study.analysis.report import study_summary
    from study.manage import export_text

    report = _user_errors(lambda: study_summary(_study_folder(args.study_dir)))
    text = export_text(report, args.format)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _user_errors(work):
    """``work()``, its bad-input errors as one line each."""
    from study.config import ConfigError
    from study.preflight import PreflightError
    from study.tune.lock import StudyBusy

    try:
        return work()
    except (ConfigError, PreflightError, StudyBusy, FileNotFoundError, OSError) as error:
        raise UserError(str(error)) from None


def _study_folder(path: str) -> Path:
    """``path``, if it is a study's folder; else the one line that says what to pass."""
    from study.tune.runner import CONFIG_FILE

    folder = Path(path)
    if not (folder / CONFIG_FILE).is_file():
        raise UserError(f"{folder / CONFIG_FILE}: not found; pass the folder of a study started by `study run` "
                        "(results/<study name>)")
    return folder


def _until_report(work, args) -> int:
    """Run ``work`` (it returns the report, its Markdown and the study) and print the report; a bad input is one
    line, a stop says what was kept."""
    from study.config import ConfigError
    from study.data.files import DataError
    from study.models.pretrained import WeightsError
    from study.preflight import PreflightError
    from study.results import TableDamaged
    from study.tune.confirm import ConfirmError
    from study.tune.lock import StudyBusy
    from study.tune.runner import Interrupted, NothingToResume, StudyExists

    try:
        with _stdout_to_stderr():
            report, text, study = work()
    except (ConfigError, StudyExists, StudyBusy, NothingToResume, ConfirmError, DataError, WeightsError,
            PreflightError, TableDamaged, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    except Interrupted as stopped:
        print(f"stopped: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _print_report(report, text, study, args.json)


def _stdout_to_stderr():
    """While a study runs, whatever Ray and MLflow print goes to stderr: stdout carries only the report, so
    `--json` output stays one JSON object."""
    return contextlib.redirect_stdout(sys.stderr)


def _print_report(report: dict, text: str, study, as_json: bool) -> int:
    print(json.dumps(report, indent=2) if as_json else text)
    print(f"\nResults: {study.study_dir}\nMLflow:  {_mlflow_ui_command(study)}", file=sys.stderr)
    return 0


def _mlflow_ui_command(study) -> str:
    from study.tracking import tracking_uri

    uri = tracking_uri(study)
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def _soup(args) -> int:
    from study.tune.runner import soup_study

    folder = _study_folder(args.study_dir)
    return _until_report(lambda: soup_study(folder, progress=not args.no_progress, **_moved(args)), args)


def _schema(args) -> int:
    from study.schema import study_schema

    print(json.dumps(study_schema(), indent=1))
    return 0


def _report(args) -> int:
    from study.config import ConfigError
    from study.preflight import PreflightError
    from study.tune.runner import report_study

    folder = Path(args.study_dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such study folder; pass results/<study name> as written by `study run`")
    try:
        with _stdout_to_stderr():
            report, text, run_id, warning = report_study(folder, **_moved(args))
    except (FileNotFoundError, ConfigError, PreflightError) as error:
        raise UserError(str(error)) from None
    print(json.dumps(report, indent=2) if args.json else text)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    where = f"the MLflow run {run_id}" if run_id else "no MLflow run"
    print(f"\nReport: {folder / 'report'}, logged to {where}", file=sys.stderr)
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lpft-study")
    except metadata.PackageNotFoundError:
        return "unknown"


def _study_arguments(command: argparse.ArgumentParser) -> None:
    """What names and places a study: its YAML, overrides, and where its results, store, cache and data are."""
    command.add_argument("config", help="a study YAML, e.g. search_spaces/quickstart.yaml")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set seeds=[0,1] --set methods.ft.lr=[0.01]")
    command.add_argument("--name", help="study name (default: the YAML's `name`)")
    command.add_argument("--results-dir", help="results root (default: the YAML's `results_dir`, else ./results)")
    _moved_arguments(command, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                              "sqlite:///<results-dir>/mlflow.db)",
                     "cache for data, backbones and features (default: $LPFT_CACHE_DIR, else ~/.cache/lpft-study)")
    command.add_argument("--data-root", help="folder of the data sets in their official layouts (default: "
                                             "$LPFT_DATA_ROOT; the embedded benchmark needs none)")
    command.add_argument("--weights", help="local pretrained weights file of the backbone (a MoCo .pth.tar, a timm "
                                           "or CLIP checkpoint, a state dict)")
    command.add_argument("--system-metrics", action="store_true",
                         help="log MLflow's system metrics (CPU, memory, disk, network; GPU where there is one) to "
                              "the parent run (the driver's node) and to every trial's run (its node)")


def _moved_arguments(command: argparse.ArgumentParser,
                     tracking: str = "the MLflow store the study is in now, if not the one it ran with (a moved "
                                     "study)",
                     cache: str = "the cache to read and write now, if not the one the study ran with") -> None:
    command.add_argument("--tracking-uri", help=tracking)
    command.add_argument("--cache-dir", help=cache)


def _output_arguments(command: argparse.ArgumentParser, progress: bool = True) -> None:
    command.add_argument("--json", action="store_true", help="print the report as one JSON object")
    if progress:
        command.add_argument("--no-progress", action="store_true", help="no progress bars")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a study from a YAML search space",
                              description="Run a study's trials on Ray Tune as the YAML says (every method, "
                                          "hyper-parameter and seed); write the results table, log to MLflow, print "
                                          "the selection tables. With --dry-run: what it would run, nothing started.")
    _study_arguments(run)
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and the trials per method "
                                                            "(as `study plan`) and start nothing")
    _output_arguments(run)
    run.set_defaults(command=_run)

    plan = commands.add_parser("plan", help="the resolved config and the trials per method; nothing runs",
                               description="Validate a study YAML (every problem, one line each), then print the "
                                           "number of trials per method and the resolved config (every default "
                                           "filled in, as config.yaml will hold it). Nothing is started or written.")
    _study_arguments(plan)
    plan.set_defaults(command=_plan)

    resume = commands.add_parser("resume", help="continue a study whose driver stopped",
                                 description="Restore a study's Ray Tune experiment (Tuner.restore): finished trials "
                                             "stay as they are, unfinished or failed ones continue from their last "
                                             "epoch checkpoint, into the same results table and MLflow runs.")
    resume.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    _moved_arguments(resume)
    _output_arguments(resume)
    resume.set_defaults(command=_resume)

    confirm = commands.add_parser("confirm", help="rerun each method's selected configuration on new seeds",
                                  description="Rerun every method's selected configuration (by ID val, and the "
                                              "OOD oracle's where it picks another) once per new seed, into the "
                                              "same results table and MLflow parent run; the report's tables then "
                                              "count every seed (selection still chooses by the search's). Run it "
                                              "again to continue one that was stopped.")
    confirm.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    confirm.add_argument("--seeds", type=int, required=True, metavar="N", help="how many new seeds, e.g. 5")
    _moved_arguments(confirm)
    _output_arguments(confirm)
    confirm.set_defaults(command=_confirm)

    soup = commands.add_parser("soup", help="cook the uniform and greedy soups of a finished study's trials",
                               description="Average the final weights of each fine-tuning method's trials that share a "
                                           "starting point (same method, seed and structure): the uniform soup of "
                                           "all of them, and the greedy soup (sorted by ID-val accuracy, each added "
                                           "only if the soup's ID val does not fall); score both on every split, "
                                           "write soups.parquet and report the study again, the soups as rows of "
                                           "their own. Nothing is retrained. (`soups: true` in a study file does "
                                           "this after its sweep.)")
    soup.add_argument("study_dir", help="a study folder, e.g. results/methods")
    _moved_arguments(soup)
    _output_arguments(soup)
    soup.set_defaults(command=_soup)

    report = commands.add_parser("report", help="redraw a study's report from its results tables",
                                 description="Read <study dir>/results.parquet (and wise.parquet, soups.parquet), "
                                             "select by every rule, write report/ (report.md, report.html, "
                                             "summary.json, figures as PNG and PDF with their CSVs) and log it to the "
                                             "study's MLflow parent run, print the tables (or --json). Nothing is "
                                             "rerun.")
    report.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    _moved_arguments(report)
    _output_arguments(report, progress=False)
    report.set_defaults(command=_report)

    listing = commands.add_parser("list", help="the studies under a results root, or in an MLflow store",
                                  description="One line per study: its name, status (running, finished, stopped: "
                                              "`study resume` continues it, not started), trials ended of planned, "
                                              "benchmark, backbone and when it was created.")
    listing.add_argument("results_dir", nargs="?", default="results", help="a results root (default: ./results)")
    listing.add_argument("--tracking-uri", help="list the studies an MLflow store holds instead")
    listing.add_argument("--json", action="store_true", help="print one JSON list")
    listing.set_defaults(command=_list)

    delete = commands.add_parser("delete", help="delete a study: its folder, checkpoints and MLflow experiment",
                                 description="Delete a study everywhere its name is used: its results folder, its "
                                             "checkpoints where `storage` put them elsewhere, and its MLflow "
                                             "experiment (the name is then free for a new study). Asks for the "
                                             "study's name first, unless --yes; refuses a study that is running.")
    delete.add_argument("name", help="the study's name")
    delete.add_argument("--results-dir", default="results", help="its results root (default: ./results)")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    delete.set_defaults(command=_delete)

    compare = commands.add_parser("compare", help="two studies' selection tables side by side",
                                  description="For every selection rule and method, the two studies' ID-test and "
                                              "OOD-average scores (mean ± std over seeds) and their differences "
                                              "(the second minus the first). Reads their results tables only.")
    compare.add_argument("first", help="a study folder")
    compare.add_argument("second", help="another study folder")
    compare.set_defaults(command=_compare)

    export = commands.add_parser("export", help="the selection tables as csv, LaTeX or JSON",
                                 description="The selection tables as a paper uses them: csv (one row per rule, "
                                             "method and split: mean, std, n, the chosen configuration), json, or "
                                             "latex (one booktabs table per rule, mean ± std). Reads the results "
                                             "tables only.")
    export.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    export.add_argument("--format", choices=("csv", "latex", "json"), default="csv", help="default: csv")
    export.add_argument("--output", help="a file to write (default: standard output)")
    export.set_defaults(command=_export)

    schema = commands.add_parser("schema", help="print the JSON Schema of a study file",
                                 description="Print the JSON Schema of a study file, generated from the config's "
                                             "definition: editors complete and check keys with it (write it to "
                                             "study.schema.json and put `# yaml-language-server: "
                                             "$schema=study.schema.json` at the top of a YAML).")
    schema.set_defaults(command=_schema)
    return parser


if __name__ == "__main__":
    sys.exit(main())
