"""One study from config to report: list the benchmark, extract its features on a worker, build the Tuner, run it,
write and log the report."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from functools import partial
from importlib import metadata
from pathlib import Path

import yaml

from study.analysis.report import REPORT_DIR, VAL_LABELS, write_report
from study.cache import cache_root
from study.config import StudyConfig
from study.data import Benchmark, create_benchmark
from study.methods.catalog import METHODS as CATALOG
from study.methods.metrics import keeps_correct
from study.models import check_backbone
from study.models import custom as custom_backbones
from study.models.pretrained import require_weights
from study.preflight import PreflightError, check_gpus, check_machine, tracking_problem
from study.results import SEARCH, read_table, read_trial_outcome, read_wise_table, table_dir, write_soups
from study.sync import catch_up, clear_pending, describe_missing, mark_pending, pending
from study.tracking import StudyTracker, flatten, split_inputs, system_metrics, tracking_uri
from study.tune import disk
from study.tune.lock import LOCK_FILE, StudyLock, is_locked
from study.tune.prepare import Prepared, prepare
from study.tune.spaces import SEARCH_METRIC, SEARCH_MODE, build_search, trial_count

RAY_DIR = "ray"
CONFIG_FILE = "config.yaml"


class StudyExists(FileExistsError):
    """A study of this name already exists where the new one would write."""


class NothingToResume(FileNotFoundError):
    """``study resume`` found no study to continue."""


def absolute(study: StudyConfig) -> StudyConfig:
    """Trials run in other folders (and on other nodes): make every path absolute first, and name the tracking
    store the study uses (so ``config.yaml`` names it too, and a resumed study finds it)."""
    study = dataclasses.replace(study, results_dir=study.results_dir.resolve(), cache_dir=cache_root(study.cache_dir),
                                backbone=custom_backbones.absolute(study.backbone))
    if study.files is not None:  # the user's data: its root as an absolute path
        study = dataclasses.replace(study, files=study.files.with_root(
            str(Path(study.files.root or study.data_root or ".").expanduser().resolve())))
    return dataclasses.replace(study, tracking_uri=tracking_uri(study))


def check_inputs(study: StudyConfig) -> Benchmark:
    """The study's benchmark, listed (or generated) here, and its weights file looked for: bad data or a missing
    file stop the study before Ray starts or anything is written. The backbone itself is only read by the
    extraction task (``study.tune.prepare``)."""
    benchmark = create_benchmark(study.benchmark, cache_dir=study.cache_dir, data_root=study.data_root,
                                 input_size=study.input_size, files=study.files)
    if study.backbone_weights is not None:
        require_weights(study.backbone, study.backbone_weights)
    check_backbone(study.backbone, cache_dir=study.cache_dir, weights=study.backbone_weights)
    check_against_data(study, benchmark)
    return benchmark


def check_against_data(study: StudyConfig, benchmark: Benchmark) -> None:
    """What would fail in every trial of a method, found before any: a batch larger than the train split (an epoch
    with no full batch), adapters for a text model whose attention layers are not known."""
    from study.config import ConfigError
    from study.data import TRAIN

    problems, size = [], len(benchmark.splits[TRAIN])
    for method, params in study.methods.items():
        param = params.get("batch_size")
        for batch in (param.values if param is not None else ()):
            if isinstance(batch, int) and batch > size:
                problems.append(f"methods.{method}.batch_size: {batch} is more than the {size} examples of "
                                f"{benchmark.name}'s train split, so an epoch would have no full batch; use at most "
                                f"{size}")
    if problems:
        raise ConfigError(problems)
    if custom_backbones.reads_text(study.backbone) and any(
            "rank" in CATALOG[method].params for method in study.methods):
        from study.models.text import lora_targets

        config = custom_backbones.folder_of(study.backbone) / "config.json"
        lora_targets(json.loads(config.read_text()).get("model_type", ""))


def ood_val_labels(benchmark: Benchmark) -> dict[str, list[int]]:
    """Each OOD val split's labels, in its order: the small-OOD-val rule draws its examples by them."""
    if benchmark.task != "classification":
        return {}
    return {name: split.labels.tolist() for name, split in benchmark.splits.items() if keeps_correct(name)}


def manifest(study: StudyConfig, prepared: Prepared) -> dict:
    """What a result needs to be reproduced: versions, code revision, data and backbone hashes, seeds, and where
    and how the features were extracted."""
    packages = ("torch", "torchvision", "timm", "ray", "mlflow", "optuna", "pyarrow", "lpft-study")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import ray

    cluster = {key: value for key, value in ray.cluster_resources().items() if key in ("CPU", "GPU")}
    return {"study": study.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "host": platform.node(), "cpu": _cpu_model(), "cpus": os.cpu_count(), "cluster": cluster,
            "wall_seconds": 0.0, "packages": versions, "git_sha": _git_sha(),
            "fingerprints": prepared.fingerprints, "seeds": list(study.seeds),
            "features": {key: prepared.extraction[key] for key in ("file", "extracted", "seconds", "device", "node",
                                                                    "pid")}}


def _cpu_model() -> str:
    """The driver's CPU, as /proc/cpuinfo names it (or the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_wall_time(study_dir: Path, seconds: float) -> None:
    """Add one driver session's wall time to the study's manifest (a resumed study's sessions add up)."""
    path = Path(study_dir) / "manifest.json"
    if not path.is_file():
        return
    manifest = json.loads(path.read_text())
    manifest["wall_seconds"] = round(manifest.get("wall_seconds", 0.0) + seconds, 1)
    manifest["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    partial.write_text(json.dumps(manifest, indent=2))
    os.replace(partial, path)


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def init_ray() -> None:
    # A checkpoint per epoch from short trials trips Tune's "snapshotting too often" warning: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Of Tune's own loggers only the JSON one is kept (``build_tuner``): its CSV and TensorBoard files repeat what
    # the results table and MLflow hold, and cost the driver 15 ms a trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # asked to join a cluster (checked to answer: ``study.preflight``)
        ray.init(log_to_driver=False)
    else:  # a Ray of its own: never a cluster an old address file names
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


def experiment_path(study: StudyConfig, name: str = RAY_DIR) -> str:
    """Ray Tune's experiment folder (a local path or a URI): trial state and the latest checkpoint per trial. The
    study's search is ``ray``; each ``study confirm`` is an experiment of its own."""
    return f"{study.storage_root}/{name}"


def experiment_exists(study: StudyConfig, name: str = RAY_DIR) -> bool:
    from pyarrow import fs

    uri = experiment_path(study, name)
    filesystem, path = fs.FileSystem.from_uri(uri) if "://" in uri else (fs.LocalFileSystem(), uri)
    return filesystem.get_file_info(f"{path}/tuner.pkl").type != fs.FileType.NotFound


def _trainable(study: StudyConfig, prepared: Prepared):
    from ray import tune

    from study.tune.trainable import train_trial, trial_resources

    return tune.with_resources(tune.with_parameters(train_trial, study=study, prepared=prepared),
                               partial(trial_resources, study))


def _max_concurrent_trials(study: StudyConfig) -> int | None:
    """The configured cap; else, for multi-worker trials, as many as the cluster holds at once, so idle trial
    drivers do not pile up waiting for placement groups."""
    if study.resources.max_concurrent_trials:
        return study.resources.max_concurrent_trials
    workers, cpus, gpus = study.resources.of_encoder_trials()
    if workers == 1 or not any(CATALOG[method].trains_encoder for method in study.methods):
        return None
    import ray

    total = ray.cluster_resources()
    fits = total.get("CPU", 0) // (workers * cpus)
    if gpus:
        fits = min(fits, total.get("GPU", 0) // (workers * gpus))
    return max(1, int(fits))


def build_tuner(study: StudyConfig, prepared: Prepared, callbacks: list, points: list[dict] | None = None,
                name: str = RAY_DIR):
    """The study's Tuner: its search space and scheduler; or, given ``points`` (flat trial configs, as
    ``grid_points`` writes them), exactly those trials to the end, as the experiment ``name``."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    if points is None:
        param_space, search_alg, num_samples = build_search(study)
        scheduler = _scheduler(study)
    else:
        param_space, search_alg, num_samples, scheduler = {"trial": tune.grid_search(points)}, None, 1, None
    return tune.Tuner(
        _trainable(study, prepared),
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples, scheduler=scheduler,
                                    reuse_actors=True,  # saves a worker start-up (~3 s of imports) per trial
                                    max_concurrent_trials=_max_concurrent_trials(study)),
        run_config=tune.RunConfig(name=name, storage_path=study.storage_root, verbose=0,
                                  callbacks=[*callbacks, JsonLoggerCallback()],  # each trial's result.json
                                  failure_config=tune.FailureConfig(max_failures=study.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )


def _scheduler(study: StudyConfig):
    if study.search.scheduler != "asha":
        return None
    from study.tune.asha import PerMethodASHA

    max_epochs = max((v for p in study.methods.values() if "epochs" in p for v in p["epochs"].values), default=1)
    return PerMethodASHA(study.seeds, time_attr="epoch", metric=SEARCH_METRIC, mode=SEARCH_MODE, max_t=max_epochs,
                         grace_period=study.search.grace_epochs)


def run_study(study: StudyConfig, *, progress: bool = True) -> tuple[dict, str]:
    """Run ``study`` to the end; returns the report (JSON object and Markdown). Finished work is never lost."""
    study = absolute(study)
    check_machine(study)
    _refuse_existing(study)
    with StudyLock(study.study_dir, new=True) as lock:  # the name is this driver's (and removed if it never starts)
        benchmark = check_inputs(study)
        if (found := StudyTracker.find(study)) is not None:
            raise _exists(f"the MLflow store {found.uri}", study)
        init_ray()
        check_gpus(study)
        prepared = prepare(study, benchmark, progress=progress)  # damaged weights stop the study before any write
        lock.started()
        return _start(study, benchmark, prepared, progress)


def _start(study: StudyConfig, benchmark: Benchmark, prepared: Prepared, progress: bool) -> tuple[dict, str]:
    """Write what a study keeps from its start (config, manifest, the OOD val labels), open its MLflow parent run,
    run its sweep."""
    tracker = StudyTracker.for_study(study)
    resolved = study.to_dict()  # every default filled in: what ran, not only what was typed
    (study.study_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    (study.study_dir / "manifest.json").write_text(json.dumps(manifest(study, prepared), indent=2))
    (study.study_dir / VAL_LABELS).write_text(json.dumps(ood_val_labels(benchmark)))

    inputs = split_inputs(benchmark)
    tracker.start_parent(flatten(resolved), {"study": study.name, **{f"fingerprint.{k}": v for k, v in
                                                                    prepared.fingerprints.items()}}, inputs)
    callbacks = study_callbacks(study, tracker, inputs, trial_count(study), progress)
    return fit(study, tracker, lambda: build_tuner(study, prepared, callbacks), trial_count(study),
               f"study resume {study.study_dir}", after=soups_after(study, prepared))


def study_callbacks(study: StudyConfig, tracker: StudyTracker, inputs: list, total: int, progress: bool,
                    stage: str = SEARCH) -> list:
    """What the driver does with every trial's reports: the results table (rows of ``stage``), the MLflow child
    runs (with the study's dataset ``inputs``), a progress bar over ``total`` trials."""
    from study.tune.callbacks import MlflowTrialsCallback, ProgressCallback, ResultsTableCallback

    return [ResultsTableCallback(study.study_dir, study.name, study.seeds, stage),
            MlflowTrialsCallback(tracker, study.seeds, {method: study.searched(method) for method in study.methods},
                                 inputs, study.study_dir),
            ProgressCallback(total, study.seeds, progress)]


def load_study(study_dir: Path, **settings) -> StudyConfig:
    """The configuration of the study in ``study_dir``, read from its ``config.yaml``: its results root is the
    folder's parent (a study moved with its folder is found where it is); ``settings`` (``tracking_uri``,
    ``cache_dir``) override what it ran with."""
    from study.config import load_config

    study_dir = Path(study_dir).resolve()
    return absolute(load_config(study_dir / CONFIG_FILE, results_dir=str(study_dir.parent), **settings))


def resume_study(study_dir: Path, *, progress: bool = True, **settings) -> tuple[dict, str, StudyConfig]:
    """Continue a study whose driver stopped: finished trials stay as they are, unfinished and failed ones
    continue from their last checkpoint (Ray's ``Tuner.restore``), into the same table and MLflow runs.
    Returns the report and the study's configuration."""
    study = load_study(study_dir, **settings)
    check_machine(study)
    if not experiment_exists(study):
        raise NothingToResume(_no_experiment(study))
    with StudyLock(study.study_dir, new=False, command="study resume"):
        tracker = parent_tracker(study)
        _, prepared = reopen(study, tracker, progress)
        report, text = fit(study, tracker, lambda: restore_tuner(study, prepared), trial_count(study),
                           f"study resume {study.study_dir}", after=soups_after(study, prepared))
    return report, text, study


def parent_tracker(study: StudyConfig) -> StudyTracker:
    """The tracker of a study that ran, its parent run found; ``NothingToResume`` if the store holds none."""
    tracker = StudyTracker.for_study(study)
    tracker.parent_id = tracker.existing_parent()
    if tracker.parent_id is None:
        raise NothingToResume(f"{tracker.uri} holds no MLflow run of study {study.name!r}; pass the tracking URI "
                              "the study ran with (--tracking-uri or $MLFLOW_TRACKING_URI)")
    return tracker


def reopen(study: StudyConfig, tracker: StudyTracker, progress: bool) -> tuple[Benchmark, Prepared]:
    """Check a study's inputs again, start Ray, read its features, and mark its parent run running again."""
    benchmark = check_inputs(study)
    init_ray()
    check_gpus(study)
    prepared = prepare(study, benchmark, progress=progress)  # reads the cached features; extracts on a new cache
    tracker.end_if_driver_died()
    tracker.reopen_parent()
    return benchmark, prepared


def restore_tuner(study: StudyConfig, prepared: Prepared, name: str = RAY_DIR):
    """Ray Tune's ``Tuner.restore`` of experiment ``name``: finished trials stay, the rest continue."""
    from ray import tune

    return tune.Tuner.restore(experiment_path(study, name), trainable=_trainable(study, prepared),
                              resume_unfinished=True, resume_errored=True)


def _no_experiment(study: StudyConfig) -> str:
    """Why a study without its Ray folder cannot be resumed, and what to do instead (never deleting results)."""
    where = experiment_path(study)
    if any(table_dir(study.study_dir).glob("*.parquet")):
        return (f"{where}: Ray Tune's folder of this study is gone, so its trials cannot be restored; the results "
                f"table keeps every trial it holds (`study report {study.study_dir}` reports them); to run the rest, "
                "`study run` the config again under a new --name")
    return (f"{where}: no Ray Tune experiment to resume: the study stopped before its first trial and holds no "
            f"results; remove {study.study_dir} and `study run` it again")


def report_study(study_dir: Path, **settings) -> tuple[dict, str, str | None, str | None]:
    """Redraw a study's report from its results tables and log it to the study's MLflow parent run, if the store
    holds one. Returns the summary, the Markdown, the parent run's id (None if nothing was logged) and a warning
    (None if the table holds every trial MLflow knows of). A table with trials missing or unreadable is reported
    from what it holds, but its smaller report does not replace the one in MLflow."""
    damaged: list[Path] = []
    table = read_table(study_dir, damaged)
    report, text, folder = write_report(study_dir, table, read_wise_table(study_dir, damaged))
    config = Path(study_dir) / CONFIG_FILE
    study = load_study(study_dir, **settings) if config.is_file() else None
    if study is not None and (problem := tracking_problem(tracking_uri(study))):
        raise PreflightError(problem)
    tracker = StudyTracker.find(study) if study is not None else None
    if tracker is not None:
        tracker.end_if_driver_died()
    missed = pending(study_dir)
    if tracker is not None and (missed["trials"] or missed["report"]):
        _log_what_mlflow_lacks(study, tracker)
        if not is_locked(study_dir):  # a study that is not running is over: its parent run says how it ended
            tracker.end_parent("FINISHED" if not _unfinished_table(study_dir) else "KILLED")
        clear_pending(study_dir)
    known = {run.data.tags.get("trial_id") for run in tracker.children()} if tracker and not _whole(table, study) \
        else set()
    missing = sorted(known - set(table["trial_id"]) - {path.stem for path in damaged} - {None})
    if not (damaged or missing):
        if tracker is not None:
            tracker.log_artifacts(folder, REPORT_DIR)
            tracker.log_answer(report)
        return report, text, tracker.parent_id if tracker else None, None
    parts = [f"{len(damaged)} unreadable part file(s): {', '.join(map(str, damaged))}"] if damaged else []
    parts += [f"{len(missing)} trial(s) MLflow knows have no rows: {', '.join(missing)}"] if missing else []
    warning = (f"the results table is incomplete ({'; '.join(parts)}): this report covers the "
               f"{table['trial_id'].nunique()} trials it holds, and the report logged to MLflow is left as it was")
    return report, text, None, warning


def _whole(table, study: StudyConfig) -> bool:
    """Whether the table holds every trial of the study's search and nothing else: then MLflow cannot know a trial
    it lacks, and is not asked (a search that loads every child run, 2 s for 1,000 trials). A confirmed study's
    confirm trials are more than its config says, so for it MLflow is asked."""
    return bool((table["stage"] == SEARCH).all()) and table["trial_id"].nunique() >= trial_count(study)


def _refuse_existing(study: StudyConfig) -> None:
    """A study name is used once per results root and storage (and MLflow store, checked once the inputs are):
    never overwrite, never mix; a study running now says so."""
    if is_locked(study.study_dir):
        StudyLock(study.study_dir, new=False).acquire()  # raises StudyBusy, naming who holds it
    for where, exists in ((study.study_dir, study.study_dir.exists() and any(study.study_dir.iterdir())),
                          (experiment_path(study), study.storage is not None and experiment_exists(study))):
        if exists:
            raise _exists(str(where), study)


def _exists(where: str, study: StudyConfig) -> StudyExists:
    ran_here = study.study_dir.is_dir() and any(path.name != LOCK_FILE for path in study.study_dir.iterdir())
    if not ran_here:  # the store holds a study run under another results dir (this folder: only this run's lock)
        return StudyExists(f"{where} already holds a study named {study.name!r}, run with another --results-dir "
                           f"(not {study.results_dir}); pass --name NEW_NAME for a new study, or `study resume` "
                           "the folder it ran in")
    return StudyExists(f"{where} already holds a study named {study.name!r}; `study resume {study.study_dir}` "
                       f"continues it, or pass --name NEW_NAME for a new one")


def _unfinished_table(study_dir: Path) -> bool:
    return any(read_trial_outcome(part) == "running" for part in table_dir(study_dir).glob("*.parquet"))


def _unfinished(study: StudyConfig, grid, expected: int) -> bool:
    """Whether Tune returned before every trial ended (it returns normally when Ctrl-C stops it): fewer trials
    than ``expected`` (some never started), or trials the results table still holds as running."""
    if len(grid) < expected:
        return True
    return any(read_trial_outcome(part) == "running" for part in table_dir(study.study_dir).glob("*.parquet"))


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (a scheduler's stop, `kill`) stops a study as Ctrl-C does: Ray Tune ends its trials and saves its
    state. Installed after Ray starts, whose core worker sets a SIGTERM handler of its own that aborts."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Interrupted(RuntimeError):
    """The study was stopped (Ctrl-C, SIGTERM) before every trial ended; what finished is kept."""


def cook_soups(study: StudyConfig, prepared: Prepared, name: str = RAY_DIR) -> None:
    """The sweep's soups (``study.tune.soups``), into ``soups.parquet``."""
    from study.tune.soups import cook

    write_soups(study.study_dir, cook(study, prepared, read_table(study.study_dir), experiment_path(study, name)))


def _log_the_end(study: StudyConfig, tracker: StudyTracker, status: str, report: dict | None) -> None:
    """Bring MLflow up to date at a study's end: trials it missed while its server was away, the config, manifest
    and report, the runs' statuses. A server that does not answer costs MLflow, never the study: one line says what
    it lacks and which command logs it."""
    try:
        _log_what_mlflow_lacks(study, tracker)
        if report is not None:
            tracker.log_artifacts(study.study_dir / REPORT_DIR, REPORT_DIR)
            tracker.log_answer(report)
        if status == "KILLED":
            tracker.end_running_children("KILLED")
        tracker.end_parent(status)
        clear_pending(study.study_dir)
    except Exception:  # noqa: BLE001 - MLflow's client raises many kinds for a server that is away
        try:
            mark_pending(study.study_dir, report=True)
        except OSError:  # a full disk: `study report` finds the table ahead of MLflow and catches up all the same
            pass
        print(f"warning: {describe_missing(study.study_dir, tracker.uri) or 'MLflow did not take the end of the study'}"
              f"; `study report {study.study_dir}` logs what it lacks", file=sys.stderr)


def _log_what_mlflow_lacks(study: StudyConfig, tracker: StudyTracker) -> None:
    """The epochs of the trials MLflow missed while its server was away (``study.sync``), from the results table,
    and the study's config and manifest as its parent run's artifacts."""
    if pending(study.study_dir)["trials"]:
        catch_up(tracker, study.study_dir, study.seeds, {m: study.searched(m) for m in study.methods},
                 split_inputs_of(study))
    for name in (CONFIG_FILE, "manifest.json"):
        tracker.client.log_artifact(tracker.parent_id, str(study.study_dir / name))


def split_inputs_of(study: StudyConfig) -> list:
    """The study's splits as MLflow dataset inputs, for child runs created after the fact (its benchmark listed
    again: from the cache, or the files' listing)."""
    return split_inputs(check_inputs(study))


def soups_after(study: StudyConfig, prepared: Prepared):
    """What a study does after its sweep: its soups, where it asks for them. Soups that cannot be cooked leave the
    sweep's results and report as they are, with one line saying so."""
    def after():
        try:
            cook_soups(study, prepared)
        except Exception as error:  # noqa: BLE001 - the sweep is done and kept; the soups can be cooked again
            reason = str(getattr(error, "cause", None) or error).strip().splitlines()[-1][:200]
            print(f"warning: the soups were not cooked ({type(error).__name__}: {reason}); the sweep is complete, "
                  f"`study soup {study.study_dir}` cooks them", file=sys.stderr)

    return after if study.soups else None


def soup_study(study_dir: Path, *, progress: bool = True, **settings) -> tuple[dict, str, StudyConfig]:
    """``study soup``: cook a finished study's soups from its trials' final weights, then report it again."""
    study = load_study(study_dir, **settings)
    check_machine(study)
    if not experiment_exists(study):
        raise NothingToResume(_no_experiment(study))
    with StudyLock(study.study_dir, new=False, command="study soup"):
        return _soup(study, progress)


def _soup(study: StudyConfig, progress: bool) -> tuple[dict, str, StudyConfig]:
    tracker = parent_tracker(study)
    _, prepared = reopen(study, tracker, progress)
    try:
        cook_soups(study, prepared)
        report, text, folder = write_report(study.study_dir, read_table(study.study_dir))
        tracker.log_artifacts(folder, REPORT_DIR)
        tracker.log_answer(report)
    finally:
        tracker.end_parent("FINISHED")
    return report, text, study


def fit(study: StudyConfig, tracker: StudyTracker, make_tuner, expected: int, again: str,
        after=None) -> tuple[dict, str]:
    """Run the tuner (of ``expected`` trials), then end the parent run whatever happened: FINISHED (with the
    report), KILLED (stopped by a signal: the report of what finished, the trials' runs KILLED too; the command
    ``again`` continues it) or FAILED."""
    status, report, text, started = "FAILED", None, None, time.monotonic()
    disk.reset()
    try:
        with _sigterm_as_ctrl_c(), system_metrics(tracker.uri, tracker.parent_id if study.system_metrics else None):
            grid = make_tuner().fit()
        status = "KILLED" if _unfinished(study, grid, expected) else "FINISHED"
        if status == "FINISHED" and after is not None:
            after()
    except KeyboardInterrupt:  # a second Ctrl-C, which Tune passes on
        status = "KILLED"
    finally:
        full = disk.stopped_for_space()
        try:
            add_wall_time(study.study_dir, time.monotonic() - started)
            if status != "FAILED" and not full and table_dir(study.study_dir).is_dir():
                report, text, folder = write_report(study.study_dir, read_table(study.study_dir))
        except OSError as error:  # the disk filled as the study ended: the report is redrawn by `study report`
            if not disk.is_disk_full(error):
                raise
            full = full or disk.stopped_for_space() or f"{study.study_dir}: the file system is full"
        _log_the_end(study, tracker, status, report)
    if full:
        raise Interrupted(f"{full}: free some space, then `{again}` continues it")
    if status == "KILLED":
        raise Interrupted(f"the study was stopped before every trial ended; what finished is kept in "
                          f"{study.study_dir}: `{again}` continues it")
    return report, text
