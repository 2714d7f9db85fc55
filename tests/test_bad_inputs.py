"""Bad input as a tough new user gives it, through the CLI's own entry point: every case is refused before any work
with exit code 2, one line per problem naming the key, path or URI, no traceback, and nothing created on disk or in
MLflow."""
import socket
from pathlib import Path

import pytest
import ray

from helpers import ROOT
from study.cli import main

SMOKE = str(ROOT / "search_spaces" / "smoke.yaml")
TOY = str(ROOT / "search_spaces" / "toy.yaml")


def dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def no_ray():
    """Each case checks that a refused study never starts Ray: stop the one an earlier study may have left running
    in this process (``helpers.study_here``)."""
    ray.shutdown()


def run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def place(tmp_path):
    """A results dir and a cache dir that do not exist yet, a file, and a snapshot of the folder to compare."""
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


def nothing_created(place: Path, before: set) -> bool:
    return set(place.rglob("*")) == before


# (what, CLI arguments after `study`, what the one line must name). {tmp} is the test's folder, {port} a dead port.
CONFIG_CASES = [
    ("lr NaN", ["run", SMOKE, "--set", "methods.ft.lr=[.nan]"], "methods.ft.lr"),
    ("lr inf", ["run", SMOKE, "--set", "methods.ft.lr=[.inf]"], "methods.ft.lr"),
    ("lr negative", ["run", SMOKE, "--set", "methods.ft.lr=[-0.1]"], "methods.ft.lr"),
    ("momentum negative", ["run", SMOKE, "--set", "methods.ft.momentum=-0.5"], "methods.ft.momentum"),
    ("momentum one", ["run", SMOKE, "--set", "methods.ft.momentum=1.0"], "methods.ft.momentum"),
    ("weight decay negative", ["run", SMOKE, "--set", "methods.ft.weight_decay=-1"], "methods.ft.weight_decay"),
    ("weight decay NaN", ["run", SMOKE, "--set", "methods.lpft.weight_decay=.nan"], "methods.lpft.weight_decay"),
    ("LoRA rank 0", ["run", SMOKE, "--set", "methods.lora.rank=0"], "methods.lora.rank"),
    ("LoRA scale NaN", ["run", SMOKE, "--set", "methods.lora.scale=.nan"], "methods.lora.scale"),
    ("LP l2 negative", ["run", SMOKE, "--set", "methods.lp.l2=[-1.0]"], "methods.lp.l2"),
    ("LP C zero", ["run", SMOKE, "--set", "methods.lp={C: [0.0]}"], "methods.lp.C"),
    ("LP-FT head l2 inf", ["run", SMOKE, "--set", "lpft_head_l2=[.inf]"], "lpft_head_l2"),
    ("WiSE alpha 1.5", ["run", SMOKE, "--set", "wise_alphas=[0, 1.5]"], "wise_alphas"),
    ("WiSE alpha NaN", ["run", SMOKE, "--set", "wise_alphas=[.nan]"], "wise_alphas"),
    ("epochs 0", ["run", SMOKE, "--set", "methods.ft.epochs=0"], "methods.ft.epochs"),
    ("batch size 0", ["run", SMOKE, "--set", "methods.ft.batch_size=0"], "methods.ft.batch_size"),
    ("loguniform from 0", ["run", SMOKE, "--set", "search.algorithm=random", "--set",
                           "methods.ft.lr={loguniform: [0, 0.1]}"], "methods.ft.lr"),
    ("ASHA grace beyond epochs", ["run", SMOKE, "--set", "search.scheduler=asha", "--set", "search.grace_epochs=5"],
     "search.grace_epochs"),
    ("ASHA grace 0", ["run", SMOKE, "--set", "search.scheduler=asha", "--set", "search.grace_epochs=0"],
     "search.grace_epochs"),
    ("workers per trial 0", ["run", SMOKE, "--set", "resources.workers_per_trial=0"], "resources.workers_per_trial"),
    ("max concurrent -1", ["run", SMOKE, "--set", "resources.max_concurrent_trials=-1"],
     "resources.max_concurrent_trials"),
    ("CPUs 0", ["run", SMOKE, "--set", "resources.cpus_per_worker=0"], "resources.cpus_per_worker"),
    ("GPUs negative", ["run", SMOKE, "--set", "resources.gpus_per_worker=-1"], "resources.gpus_per_worker"),
    ("GPUs NaN", ["run", SMOKE, "--set", "resources.lp_gpus=.nan"], "resources.lp_gpus"),
    ("unknown method", ["run", SMOKE, "--set", "methods.sgd={lr: [0.1]}"], "methods.sgd"),
    ("unknown benchmark", ["run", SMOKE, "--set", "benchmark=cifar100"], "benchmark"),
    ("unknown key", ["run", SMOKE, "--set", "epochs=3"], "epochs"),
    ("seeds not integers", ["run", SMOKE, "--set", "seeds=[a]"], "seeds"),
    ("precision", ["run", SMOKE, "--set", "precision=fp8"], "precision"),
    ("bad --set", ["run", SMOKE, "--set", "seeds"], "--set"),
    ("weights for glyphnet", ["run", SMOKE, "--weights", "{tmp}/a-file"], "backbone_weights"),
]
FILE_CASES = [
    ("config missing", ["run", "{tmp}/nope.yaml"], "nope.yaml"),
    ("config is a folder", ["run", "{tmp}"], "is a folder"),
    ("config empty", ["run", "{tmp}/empty.yaml"], "empty.yaml: the file is empty"),
    ("config binary", ["run", "{tmp}/binary.yaml"], "binary.yaml: not a text file"),
    ("config not YAML", ["run", "{tmp}/broken.yaml"], "broken.yaml"),
    ("config a list", ["run", "{tmp}/list.yaml"], "list.yaml"),
]
MACHINE_CASES = [
    ("results dir is a file", ["run", SMOKE, "--results-dir", "{tmp}/a-file"], "results_dir"),
    ("results dir under a file", ["run", SMOKE, "--results-dir", "{tmp}/a-file/results"], "results_dir"),
    ("results dir not writable", ["run", SMOKE, "--results-dir", "/proc/lpft-results"], "/proc"),
    ("cache dir is a file", ["run", SMOKE, "--cache-dir", "{tmp}/a-file"], "cache_dir"),
    ("cache dir not writable", ["run", SMOKE, "--cache-dir", "/proc/lpft-cache"], "cache_dir"),
    ("tracking URI scheme", ["run", SMOKE, "--tracking-uri", "foo://bar"], "foo://bar"),
    ("tracking server down", ["run", SMOKE, "--tracking-uri", "http://127.0.0.1:{port}"], "127.0.0.1:{port}"),
    ("tracking store under a file", ["run", SMOKE, "--tracking-uri", "sqlite:///{tmp}/a-file/mlflow.db"],
     "tracking_uri"),
    ("storage scheme", ["run", SMOKE, "--set", "storage=foo://bar"], "storage"),
    ("storage is a file", ["run", SMOKE, "--set", "storage={tmp}/a-file"], "storage"),
    ("data root is a file", ["run", SMOKE, "--data-root", "{tmp}/a-file"], "data_root"),
    ("resume a folder that is no study", ["resume", "{tmp}"], "config.yaml"),
    ("confirm a folder that is no study", ["confirm", "{tmp}", "--seeds", "2"], "config.yaml"),
    ("a text benchmark for an image backbone", ["run", SMOKE, "--set", "benchmark=vader-sentiment"],
     "backbone: glyphnet reads images"),
    ("report a folder with no table", ["report", "{tmp}"], "results.parquet"),
    ("report a missing folder", ["report", "{tmp}/nope"], "nope"),
]


@pytest.mark.parametrize("what, argv, named", CONFIG_CASES + FILE_CASES + MACHINE_CASES,
                         ids=[case[0] for case in CONFIG_CASES + FILE_CASES + MACHINE_CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(what, argv, named, place, capsys, monkeypatch):
    (place / "empty.yaml").write_text("")
    (place / "binary.yaml").write_bytes(bytes(range(128, 256)) * 4)
    (place / "broken.yaml").write_text("name: x\nmethods: {ft: [\n")
    (place / "list.yaml").write_text("- name: x\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    port = dead_port()
    fill = lambda text: text.replace("{tmp}", str(place)).replace("{port}", str(port))  # noqa: E731
    argv = [fill(arg) for arg in argv]
    if argv[0] == "run":
        for flag, default in (("--results-dir", place / "results"), ("--cache-dir", place / "cache")):
            argv += [] if flag in argv else [flag, str(default)]
    before = set(place.rglob("*"))
    code, err = run(argv + (["--no-progress"] if argv[0] != "report" else []), capsys)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err and lines, err
    assert any(fill(named) in line for line in lines), err
    assert nothing_created(place, before), sorted(set(place.rglob("*")) - before)
    assert not ray.is_initialized(), "refused before Ray started"


def test_a_ray_address_that_does_not_answer_is_one_line_within_seconds(place, capsys, monkeypatch):
    """A head that died leaves its address behind: the study says so at once instead of waiting for it."""
    import time

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{dead_port()}")
    before, start = set(place.rglob("*")), time.monotonic()
    code, err = run(["run", TOY, "--results-dir", str(place / "results"), "--no-progress"], capsys)
    assert code == 2 and "RAY_ADDRESS=127.0.0.1:" in err and "unset RAY_ADDRESS" in err, err
    assert time.monotonic() - start < 10 and nothing_created(place, before) and not ray.is_initialized()


def test_gpus_the_cluster_lacks_are_refused_not_waited_for(place, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = set(place.rglob("*"))
    try:
        code, err = run(["run", TOY, "--results-dir", str(place / "results"), "--cache-dir", str(place / "cache"),
                         "--set", "resources.gpus_per_worker=1", "--no-progress"], capsys)
    finally:
        ray.shutdown()
    assert code == 2 and "resources.gpus_per_worker" in err and "has 0" in err and "Traceback" not in err, err
    assert nothing_created(place, before), sorted(set(place.rglob("*")) - before)


def test_the_write_probe_sees_what_permission_bits_do_not():
    """The probe creates (and removes) a file: permission bits do not stop root, /proc stops everyone."""
    from study.preflight import writable_folder

    assert writable_folder(Path("/proc/lpft"), "results_dir") is not None
    assert writable_folder(Path("/tmp"), "results_dir") is None


@pytest.mark.parametrize("what, argv, line", [
    ("a batch larger than the train split", ["--set", "methods.ft.batch_size=[64, 1024]"],
     "error: methods.ft.batch_size: 1024 is more than the 800 examples of glyphs-small's train split, so an epoch "
     "would have no full batch; use at most 800"),
    ("a seed listed twice", ["--set", "seeds=[0, 1, 0]"],
     "error: seeds: 0 appears 2 times; each seed runs every configuration once (a repeat would run its trials twice "
     "and count them twice in the spread); list each seed once"),
    ("a name too long", ["--name", "x" * 101],
     f"error: name: {'x' * 101!r} is not a valid study name: it names a folder, a storage URI and an MLflow "
     "experiment; use at most 100 letters, digits, '.', '-' and '_', starting with a letter or digit"),
    ("a name no URI takes", ["--name", "smoke#2"], "error: name: 'smoke#2' is not a valid study name"),
])
def test_what_would_fail_in_every_trial_is_refused_at_set_up(what, argv, line, place, cache_dir, capsys):
    """Found from the config and the listed benchmark (the session's cache holds it), before Ray starts."""
    before = set(place.rglob("*"))
    code, err = run(["run", SMOKE, "--results-dir", str(place / "results"), "--no-progress", *argv], capsys)
    assert code == 2 and err.strip().splitlines()[0].startswith(line), err
    assert nothing_created(place, before) and not ray.is_initialized()
