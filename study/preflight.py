"""What a study needs from the machine, checked before any work: folders it can write, a storage and a tracking
store that exist and answer, a Ray cluster that answers, the GPUs it asks for. Each problem is one line naming
the key, path or URI and the fix; nothing is created (a probe file is removed again) and nothing waits long.

A study joins a running Ray cluster only when asked, by ``$RAY_ADDRESS`` (``ray job submit`` sets it for its
entrypoint): without it, it starts a Ray of its own, so an address file left by a head that died is never read.
"""
from __future__ import annotations

import math
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from study.config import StudyConfig
from study.methods.catalog import METHODS as CATALOG
from study.tracking import local_store, tracking_uri
from study.tune.disk import low_space_problem

PROBE_TIMEOUT_S = 3.0
TRACKING_SCHEMES = {"", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks"}
STORAGE_SCHEMES = {"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file"}


class PreflightError(RuntimeError):
    """The machine cannot run the study as configured; one line per problem."""


def check_machine(study: StudyConfig) -> None:
    """Every problem a study's paths, storage, tracking store and Ray address have, raised together."""
    problems = [writable_folder(study.results_dir, "results_dir (--results-dir)")
                or low_space_problem(study.results_dir, "results_dir (--results-dir)"),
                writable_folder(study.cache_dir, "cache_dir (--cache-dir or $LPFT_CACHE_DIR)"),
                _data_root_problem(study.data_root),
                _storage_problem(study.storage),
                tracking_problem(tracking_uri(study)),
                ray_address_problem(os.environ.get("RAY_ADDRESS"))]
    problems = [problem for problem in problems if problem]
    if problems:
        raise PreflightError("\n".join(problems))


def writable_folder(path: Path | None, key: str) -> str | None:
    """None if ``path`` is a folder this process can write into, or can be created as one."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{key}: {path} is a file, not a folder; pass a folder"
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        return f"{key}: {path} lies under {existing}, which is a file; pass a folder"
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".lpft-probe-"):
            pass
    except OSError as error:
        return f"{key}: {existing} is not writable ({error.strerror}); pass a folder you can write to"
    return None


def _data_root_problem(data_root: str | None) -> str | None:
    if data_root is not None and Path(data_root).exists() and not Path(data_root).is_dir():
        return (f"data_root (--data-root or $LPFT_DATA_ROOT): {data_root} is a file; pass the folder that holds the "
                "data sets")
    return None


def _storage_problem(storage: str | None) -> str | None:
    if storage is None:
        return None
    parsed = urllib.parse.urlparse(storage)
    scheme = parsed.scheme if "://" in storage else ""
    if scheme and scheme not in STORAGE_SCHEMES:
        return (f"storage: {storage} is not a storage Ray can write to (scheme {scheme!r}); use a folder every node "
                f"mounts, or one of {', '.join(f'{name}://' for name in sorted(STORAGE_SCHEMES))}")
    if scheme in ("", "file"):
        return writable_folder(Path(parsed.path if scheme else storage), "storage")
    return None


def tracking_problem(uri: str) -> str | None:
    """None if MLflow can use ``uri``: a known scheme, a local store whose folder is writable, a server that
    answers within a few seconds (MLflow itself would retry for minutes)."""
    key = "tracking_uri (--tracking-uri or $MLFLOW_TRACKING_URI)"
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme not in TRACKING_SCHEMES:
        return (f"{key}: {uri} is not a tracking URI MLflow knows (scheme {scheme!r}); use sqlite:///PATH/mlflow.db, "
                "a folder, or http://HOST:PORT of an `mlflow server`")
    if (store := local_store(uri)) is not None:
        return writable_folder(store.parent if scheme == "sqlite" else store, key)
    if scheme in ("http", "https"):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return None  # it answered (an auth proxy, an old server without /health): MLflow will say the rest
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return (f"{key}: no MLflow server answers at {uri} ({reason}); start one (`mlflow server --host "
                    "127.0.0.1 --port 5000`) or drop --tracking-uri to use the study's own SQLite store")
    return None


def ray_address_problem(address: str | None) -> str | None:
    """None unless ``$RAY_ADDRESS`` names a cluster that does not answer within a few seconds."""
    if not address or address == "local":
        return None
    where = _host_and_port(address)
    if where is None:
        return (f"RAY_ADDRESS={address}: no running Ray cluster found there; start one (`ray start --head`), or "
                "unset RAY_ADDRESS to run on a fresh local Ray")
    try:
        socket.create_connection(where, timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return (f"RAY_ADDRESS={address}: no Ray cluster answers at {where[0]}:{where[1]} ({error.strerror or error}); "
                "start it (`ray start --head`), or unset RAY_ADDRESS to run on a fresh local Ray")
    return None


def _host_and_port(address: str) -> tuple[str, int] | None:
    if address == "auto":  # the address file of the last `ray start` on this machine, as ray.init reads it
        from ray._private.services import canonicalize_bootstrap_address

        try:
            address = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError):
            return None
        if address is None:
            return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def check_gpus(study: StudyConfig) -> None:
    """After Ray connects, before anything is written: the GPUs a trial asks for exist in the cluster (else Ray
    would wait for them for ever)."""
    import ray

    if study.resources.wait_for_gpus:
        return
    have = ray.cluster_resources().get("GPU", 0)
    for method in study.methods:
        workers, _, gpus = study.resources.of_trial(method)
        need = math.ceil(workers * gpus) if workers > 1 else gpus
        if need > have:
            key = "gpus_per_worker" if CATALOG[method].trains_encoder else "lp_gpus"
            raise PreflightError(
                f"resources.{key}: a {method} trial asks for {need:g} GPU(s) but the Ray cluster has {have:g}; set "
                f"resources.{key}: 0, run on a cluster with GPUs, or (an autoscaling cluster that adds GPU nodes on "
                "demand) set resources.wait_for_gpus: true")
