"""MLflow: one experiment and one parent run per study, one child run per trial.

The tracking store is the config's ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite store under the
results root (``results/mlflow.db``, artifacts in ``results/mlartifacts``), which ``mlflow ui`` opens with
``--backend-store-uri sqlite:///results/mlflow.db``.

Child runs are found by their ``trial_id`` tag before one is created, so a restored study reuses them. The tracker
pickles without its client (Ray stores the Tune callbacks that hold it, and ``study resume`` unpickles them).
Every run lists the benchmark's splits as its dataset inputs (``split_inputs``); with ``system_metrics`` the
parent run and every trial's run also log MLflow's system metrics of their node (``system_metrics``).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import urllib.parse
import warnings
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from study import metric_keys
from study.cache import content_hash
from study.config import StudyConfig
from study.data import GENERATED, ID_VAL, TRAIN, Benchmark

PARENT_TAG = "mlflow.parentRunId"
SEARCH_PAGE = 1000  # runs per page of a search (the most a file or SQL store returns at once)
# MLflow's client retries a request for minutes by default (7 retries, backoff factor 2, a 120 s timeout); a study
# whose tracking server went away must not stall that long on each of its trials: it fails fast and catches up
# (``study.sync``). A user's own settings win.
for _name, _value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                      ("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")):
    os.environ.setdefault(_name, _value)


def tracking_uri(study: StudyConfig) -> str:
    if study.tracking_uri:
        return study.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(study.results_dir / 'mlflow.db').resolve()}"


def split_inputs(benchmark: Benchmark) -> list[DatasetInput]:
    """Each split of ``benchmark`` as an MLflow dataset input: its name, a digest of the benchmark's fingerprint
    and the split, where its files are (or that it is generated), its number of examples, and what the study uses
    it for (training, validation: ID val and the oracle's OOD val, testing)."""
    inputs = []
    for split, dataset in benchmark.splits.items():
        source = ("code", {"generator": f"study.data ({benchmark.name})"}) if benchmark.source == GENERATED else (
            "local", {"uri": benchmark.source})
        context = "training" if split == TRAIN else "validation" if split.endswith("_val") else "testing"
        entity = Dataset(name=f"{benchmark.name}/{split}", digest=content_hash(benchmark.fingerprint, split),
                         source_type=source[0], source=json.dumps(source[1]),
                         profile=json.dumps({"num_rows": len(dataset)}))
        inputs.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


@contextlib.contextmanager
def system_metrics(uri: str, run_id: str | None, node: str | None = None):
    """MLflow's system metrics of this node (CPU, memory, disk, network; GPU where NVML finds one) logged to run
    ``run_id`` while the block runs, as ``system/<node>/...`` if ``node``; nothing if ``run_id`` is None."""
    if run_id is None:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, resume_logging=True, node_id=node, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        _publish_last_interval(monitor, run_id)


def _publish_last_interval(monitor, run_id: str) -> None:
    """Log what MLflow's monitor sampled in its last, unfinished interval, which its ``finish`` drops: without it a
    block shorter than one sampling interval (a short trial) would log no system metrics at all. Metrics of the
    machine never stop a trial: a store that refuses them only warns."""
    metrics = monitor.aggregate_metrics()
    if not metrics:
        return
    try:
        monitor.publish_metrics(metrics)
        monitor.mlflow_logger.flush()
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"the last system metrics of run {run_id} are not logged: {error}")


def flatten(mapping: dict, prefix: str = "") -> dict[str, str]:
    """Nested config → ``{"methods.ft.lr": "[0.01, 0.03]", ...}`` (MLflow params must be flat strings)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


class StudyTracker:
    """The study's MLflow experiment and parent run, and the child runs of its trials."""

    def __init__(self, uri: str, study_name: str, artifact_root: Path | None = None):
        self.uri, self.study_name = uri, study_name
        self._client: MlflowClient | None = None
        experiment = self.client.get_experiment_by_name(study_name)
        if experiment is None:
            location = (artifact_root / study_name).resolve().as_uri() if artifact_root else None
            self.experiment_id = self.client.create_experiment(study_name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        self.parent_id: str | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    @classmethod
    def for_study(cls, study: StudyConfig) -> "StudyTracker":
        uri = tracking_uri(study)
        local = uri.startswith("sqlite:") or uri.startswith("file:")
        return cls(uri, study.name, study.results_dir / "mlartifacts" if local else None)

    @classmethod
    def find(cls, study: StudyConfig) -> "StudyTracker | None":
        """The tracker of a study the store already holds, its parent run open for logging; None if it holds none
        (a local store that does not exist yet is not created by asking)."""
        uri = tracking_uri(study)
        if not _local_store_exists(uri) or MlflowClient(uri).get_experiment_by_name(study.name) is None:
            return None
        tracker = cls.for_study(study)
        tracker.parent_id = tracker.existing_parent()
        return tracker if tracker.parent_id else None

    def existing_parent(self) -> str | None:
        """The run id of this study's parent run, if the store already has one."""
        found = self.client.search_runs([self.experiment_id], "tags.lpft_role = 'study'", max_results=1)
        return found[0].info.run_id if found else None

    def start_parent(self, params: dict[str, str], tags: dict[str, str], inputs: list[DatasetInput]) -> str:
        """Create the study's parent run, with the study's config as params and its splits as dataset inputs."""
        run = self.client.create_run(self.experiment_id, run_name=self.study_name,
                                     tags={"lpft_role": "study", **tags, **_driver()})
        self.parent_id = run.info.run_id
        self.client.log_batch(self.parent_id, params=[Param(k, v[:6000]) for k, v in params.items()])
        self.client.log_inputs(self.parent_id, inputs)
        return self.parent_id

    def reopen_parent(self) -> str:
        """Mark the parent run (``parent_id``, found by ``existing_parent``) running again (``study resume``)."""
        self.client.update_run(self.parent_id, status="RUNNING")
        self.client.log_batch(self.parent_id, tags=[RunTag(key, value) for key, value in _driver().items()])
        return self.parent_id

    def end_if_driver_died(self) -> bool:
        """A parent run left RUNNING by a driver that no longer runs (SIGKILL, a crash, a lost node) on this host:
        mark it and its trials' running runs KILLED. Returns whether it did. (A driver on another host is not
        judged.)"""
        run = self.client.get_run(self.parent_id)
        tags = run.data.tags
        if run.info.status != "RUNNING" or tags.get("driver.host") != platform.node():
            return False
        if _alive(int(tags.get("driver.pid", "0"))):
            return False
        self.end_running_children("KILLED")
        self.end_parent("KILLED")
        return True

    def end_running_children(self, status: str) -> None:
        for run in self.children():
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, status=status)

    def end_parent(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_id, status=status)

    def children(self) -> list:
        """The parent run's child runs (one per trial), every page of them."""
        query, runs, token = f"tags.`{PARENT_TAG}` = '{self.parent_id}'", [], None
        while True:
            page = self.client.search_runs([self.experiment_id], query, max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def log_answer(self, report: dict) -> None:
        from study.analysis.report import describe_choice

        """The study's answer on its parent run, as columns of the MLflow UI's runs table: per selection rule and
        method, the chosen configuration and epoch as a tag (``selected.<rule>.<method>``) and its mean ID-test
        and OOD-average scores as metrics (``<rule>.<method>.id_test``, ``<rule>.<method>.ood_avg``); the run's
        description says which method won."""
        tags, metrics, now = [], [], int(time.time() * 1000)
        for rule, picks in report["chosen"].items():
            for method, pick in picks.items():
                tags.append(RunTag(f"selected.{rule}.{method}", describe_choice(pick)))
                splits = report["selection"][rule][method]
                metrics += [Metric(f"{rule}.{method}.{split}", splits[split]["mean"], now, 0)
                            for split in ("id_test", "ood_avg")]
        tags.append(RunTag("mlflow.note.content", describe(report)))
        self.client.log_batch(self.parent_id, metrics=metrics, tags=tags)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.parent_id, str(folder), artifact_path)

    def child_run(self, trial_id: str, run_name: str, params: dict, tags: dict[str, str],
                  inputs: list[DatasetInput]) -> str:
        """The child run of trial ``trial_id``: the existing one if any (running again), else a new one."""
        if (found := self.trial_run(trial_id)) is not None:
            self.reopen_child(found)
            return found
        return self.new_child(trial_id, run_name, params, tags, inputs)

    def new_child(self, trial_id: str, run_name: str, params: dict, tags: dict[str, str],
                  inputs: list[DatasetInput]) -> str:
        """A new child run for trial ``trial_id`` with ``params`` and the study's dataset ``inputs``."""
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={PARENT_TAG: self.parent_id, "trial_id": trial_id, **tags})
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.log_inputs(run.info.run_id, inputs)
        return run.info.run_id

    def reopen_child(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def trial_run(self, trial_id: str) -> str | None:
        """The run id of trial ``trial_id``'s child run, if it has one."""
        query = f"tags.trial_id = '{trial_id}' and tags.`{PARENT_TAG}` = '{self.parent_id}'"
        found = self.client.search_runs([self.experiment_id], query, max_results=1)
        return found[0].info.run_id if found else None

    def trial_runs(self) -> dict[str, str]:
        """Trial id -> run id of every child run the parent has: one search for a study's driver, where one per
        trial would cost a query over a table that grows with every trial."""
        runs, token = {}, None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{PARENT_TAG}` = '{self.parent_id}'",
                                           max_results=SEARCH_PAGE, page_token=token)
            runs |= {run.data.tags["trial_id"]: run.info.run_id for run in page if "trial_id" in run.data.tags}
            if not (token := page.token):
                return runs

    def last_logged_epoch(self, run_id: str) -> int:
        """The last epoch a child run has metrics for (-1 if none): a resumed trial logs only later ones."""
        history = self.client.get_metric_history(run_id, metric_keys.key(ID_VAL, "loss"))
        return max((metric.step for metric in history), default=-1)

    def log_epoch(self, run_id: str, metrics: dict[str, float], epoch: int, timestamp_ms: int,
                  tags: dict[str, str] | None = None) -> None:
        self.client.log_batch(run_id, metrics=[Metric(key, float(value), timestamp_ms, epoch)
                                               for key, value in metrics.items()],
                              tags=[RunTag(key, value) for key, value in (tags or {}).items()])

    def end_child(self, run_id: str, outcome: str) -> None:
        self.client.log_batch(run_id, tags=[RunTag("outcome", outcome)])
        self.client.set_terminated(run_id, status="FAILED" if outcome == "failed" else "FINISHED")


def describe(report: dict) -> str:
    """One paragraph: what the study ran and which method did best ID and OOD under ID-val selection."""
    picks, metric = report["selection"]["id_val"], report.get("metric", "accuracy")
    counts = report["trials"]
    text = (f"Study {report['study']}: {counts['total']} trials ({counts['finished']} finished, "
            f"{counts['diverged']} diverged, {counts['failed']} failed). ")
    if not picks:
        return text + "No method has a configuration that finished on every seed."
    best = max if metric == "accuracy" else min
    for split, words in (("id_test", "ID test"), ("ood_avg", "OOD test (average)")):
        winner = best(picks, key=lambda method: picks[method][split]["mean"])
        text += f"Best on {words} by ID-val selection: {winner} ({picks[winner][split]['mean']:.4g} {metric}). "
    return text + "".join(f"{method} has none: {why}. " for method, why in report.get("unselected", {}).items())


def local_store(uri: str) -> Path | None:
    """The SQLite file or the store folder a local tracking URI names; None for a server."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file:") or "://" not in uri:
        return Path(urllib.parse.urlparse(uri).path if uri.startswith("file:") else uri)
    return None


def _local_store_exists(uri: str) -> bool:
    """False for a local store that is not there yet (MLflow would create it by being asked); True otherwise."""
    store = local_store(uri)
    return store is None or store.exists()


def _driver() -> dict[str, str]:
    """Which process drives the study now: a later command can tell whether it still runs."""
    return {"driver.host": platform.node(), "driver.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
