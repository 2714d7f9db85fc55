"""The `study` command: run a study, resume it, confirm its selections on new seeds, redraw its report.

    study run search_spaces/quickstart.yaml          run a study (Ray Tune, logged to MLflow), print its tables
    study run search_spaces/smoke.yaml --set seeds=[0,1] --name smoke2
    study resume results/quickstart                  continue a study whose driver stopped (crash, Ctrl-C, preemption)
    study confirm results/quickstart --seeds 5       rerun each method's selected configuration on 5 new seeds
    study soup results/methods                       the uniform and greedy soups of each method's trials
    study report results/quickstart                  redraw the report (tables, figures, report.html), no rerun
    study report results/quickstart --json           the same as one JSON object
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
    from study.tune.runner import run_study

    return _until_report(lambda: (*run_study(study, progress=not args.no_progress), study), args)


def _resume(args) -> int:
    from study.tune.runner import resume_study

    folder = _study_folder(args)
    return _until_report(lambda: resume_study(folder, progress=not args.no_progress), args)


def _confirm(args) -> int:
    from study.tune.confirm import confirm_study

    folder = _study_folder(args)
    return _until_report(lambda: confirm_study(folder, args.seeds, progress=not args.no_progress), args)


def _study_folder(args) -> Path:
    from study.tune.runner import CONFIG_FILE

    folder = Path(args.study_dir)
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
    from study.tune.runner import Interrupted, NothingToResume, StudyExists

    try:
        with _stdout_to_stderr():
            report, text, study = work()
    except (ConfigError, StudyExists, NothingToResume, ConfirmError, DataError, WeightsError, PreflightError,
            TableDamaged, FileNotFoundError) as error:
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

    folder = _study_folder(args)
    return _until_report(lambda: soup_study(folder, progress=not args.no_progress), args)


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
            report, text, run_id, warning = report_study(folder)
    except (FileNotFoundError, ConfigError, PreflightError) as error:
        raise UserError(str(error)) from None
    print(json.dumps(report, indent=2) if args.json else text)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    where = f"the MLflow run {run_id}" if run_id else "no MLflow run"
    print(f"\nReport: {folder / 'report'}, logged to {where}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="study", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a study from a YAML search space",
                              description="Run LP, FT and LP-FT trials on Ray Tune as the YAML says; write the "
                                          "results table, log to MLflow, print the selection tables.")
    run.add_argument("config", help="a study YAML, e.g. search_spaces/quickstart.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set seeds=[0,1] --set methods.ft.lr=[0.01]")
    run.add_argument("--name", help="study name (default: the YAML's `name`)")
    run.add_argument("--results-dir", help="results root (default: the YAML's `results_dir`, else ./results)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                            "sqlite:///<results-dir>/mlflow.db)")
    run.add_argument("--cache-dir", help="cache for data, backbones and features (default: $LPFT_CACHE_DIR, "
                                         "else ~/.cache/lpft-study)")
    run.add_argument("--data-root", help="folder of the data sets in their official layouts (default: $LPFT_DATA_ROOT; "
                                         "the embedded benchmark needs none)")
    run.add_argument("--weights", help="local pretrained weights file of the backbone (a MoCo .pth.tar, a timm or "
                                       "CLIP checkpoint)")
    run.add_argument("--system-metrics", action="store_true",
                     help="log MLflow's system metrics (CPU, memory, disk, network; GPU where there is one) to the "
                          "parent run (the driver's node) and to every trial's run (its node)")
    run.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(command=_run)

    resume = commands.add_parser("resume", help="continue a study whose driver stopped",
                                 description="Restore a study's Ray Tune experiment (Tuner.restore): finished trials "
                                             "stay as they are, unfinished or failed ones continue from their last "
                                             "epoch checkpoint, into the same results table and MLflow runs.")
    resume.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    resume.add_argument("--json", action="store_true", help="print the report as one JSON object")
    resume.add_argument("--no-progress", action="store_true", help="no progress bars")
    resume.set_defaults(command=_resume)

    confirm = commands.add_parser("confirm", help="rerun each method's selected configuration on new seeds",
                                  description="Rerun every method's selected configuration (by ID val, and the "
                                              "OOD oracle's where it picks another) once per new seed, into the "
                                              "same results table and MLflow parent run; the report's tables then "
                                              "count every seed (selection still chooses by the search's). Run it "
                                              "again to continue one that was stopped.")
    confirm.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    confirm.add_argument("--seeds", type=int, required=True, metavar="N", help="how many new seeds, e.g. 5")
    confirm.add_argument("--json", action="store_true", help="print the report as one JSON object")
    confirm.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    soup.add_argument("--json", action="store_true", help="print the report as one JSON object")
    soup.add_argument("--no-progress", action="store_true", help="no progress bars")
    soup.set_defaults(command=_soup)

    report = commands.add_parser("report", help="redraw a study's report from its results tables",
                                 description="Read <study dir>/results.parquet (and wise.parquet), select by ID val "
                                             "and by the OOD oracle, write report/ (report.md, report.html, "
                                             "summary.json, figures with their CSVs) and log it to the study's "
                                             "MLflow parent run, print the tables (or --json). Nothing is rerun.")
    report.add_argument("study_dir", help="a study folder, e.g. results/quickstart")
    report.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    report.set_defaults(command=_report)
    schema = commands.add_parser("schema", help="print the JSON Schema of a study file",
                                 description="Print the JSON Schema of a study file, generated from the config's "
                                             "definition: editors complete and check keys with it (write it to "
                                             "study.schema.json and put `# yaml-language-server: "
                                             "$schema=study.schema.json` at the top of a YAML).")
    schema.set_defaults(command=_schema)
    return parser


if __name__ == "__main__":
    sys.exit(main())
