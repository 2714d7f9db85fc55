"""Bad input: one line naming the key or path and the fix, exit code 2, no traceback."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study.cli import main
from study.config import ConfigError, load_config, parse_config
from study.data import list_benchmarks
from study.methods.catalog import METHODS

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_shipped_configs_are_valid():
    for path in (ROOT / "search_spaces").glob("*.yaml"):
        study = load_config(path)
        assert study.methods and study.seeds


def test_a_preset_extends_its_base_and_a_logspace_is_its_grid(tmp_path):
    base = tmp_path / "_base.yaml"
    base.write_text("seeds: [0, 1]\nmethods:\n  lp: {C: {logspace: [-7, 2, 50]}}\n  ft: {lr: [0.1], epochs: 3}\n")
    (tmp_path / "one.yaml").write_text("base: _base.yaml\nname: one\nmethods:\n  ft: {epochs: 5}\n")
    study = load_config(tmp_path / "one.yaml")
    assert study.seeds == (0, 1) and study.methods["ft"]["lr"].values == (0.1,), "the base's values"
    assert study.methods["ft"]["epochs"].values == (5,), "the file's own value over the base's"
    paper = load_config(ROOT / "search_spaces" / "paper" / "cifar10.yaml").methods["lp"]["C"].values
    assert len(paper) == 50 and paper[0] == 1e-7 and paper[-1] == 100 and paper[11] == pytest.approx(1.048e-05)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\nname: loop\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "loop.yaml")


def test_a_mistyped_key_or_name_says_what_was_meant():
    with pytest.raises(ConfigError) as raised:
        parse_config({"name": "x", "seds": [0], "benchmark": "glyph", "methods": {"ftt": {"lrr": 0.1}, "ft": {"lrr": 1}}})
    assert raised.value.problems == [
        "seds: unknown key (did you mean seeds?); expected one of " + ", ".join(sorted(
            {"backbone", "backbone_weights", "benchmark", "cache_dir", "data_root", "input_size", "lpft_head_C",
             "lpft_head_l2", "max_failures", "methods", "name", "optimizer", "precision", "resources", "results_dir",
             "schedule", "search", "seeds", "selection", "soups", "storage", "system_metrics", "tracking_uri",
             "transforms", "wise_alphas"})),
        "benchmark: unknown benchmark 'glyph' (did you mean glyphs?); choose one of " + ", ".join(list_benchmarks()),
        "methods.ftt: unknown method (did you mean ft?); choose from " + ", ".join(METHODS),
        "methods.ft.lrr: unknown key (did you mean lr?); expected one of batch_size, epochs, lr, momentum, "
        "weight_decay"]


def test_quickstart_is_the_paper_protocol_shape():
    study = load_config(QUICKSTART)
    assert set(study.methods) == {"lp", "ft", "lpft", "lora", "lplora"} and len(study.seeds) >= 3
    assert max(study.methods["lpft"]["lr"].values) < max(study.methods["ft"]["lr"].values)


@pytest.mark.parametrize("text, key, fix", [
    ("name: x\nmethods: {sgd: {lr: [0.1]}}", "methods.sgd", "choose from lp, ft, lpft, lora, lplora"),
    ("name: x\nbenchmark: imagenet-z\nmethods: {ft: {}}", "benchmark", "choose one of"),
    ("name: x\nbackbone: resnet9000\nmethods: {ft: {}}", "backbone", "choose one of"),
    ("name: x\nmethods: {ft: {lr: []}}", "methods.ft.lr", "give at least one value"),
    ("name: x\nmethods: {ft: {lr: fast}}", "methods.ft.lr", "expected float"),
    ("name: x\nmethods: {ft: {epochs: 2.5}}", "methods.ft.epochs", "expected int"),
    ("name: x\nseeds: zero\nmethods: {ft: {}}", "seeds", "list of integers"),
    ("name: x\nmethods: {ft: {lr: {loguniform: [1e-4, 1e-1]}}}", "methods.ft.lr", "random or optuna"),
    ("name: x\nmethods: {ft: {lr: {loguniform: [0.1, 0.01]}}}\nsearch: {algorithm: optuna}",
     "methods.ft.lr.loguniform", "low < high"),
    ("name: x\nmethods: {ft: {lrr: [0.1]}}", "methods.ft.lrr", "unknown key"),
    ("name: x\nmethods: {ft: {}}\nsearch: {algorithm: bayes}", "search.algorithm", "grid, random, optuna"),
    ("methods: {ft: {}}", "name", "missing"),
    ("name: x\nmethods: {ft: {}}\nresources: {workers_per_trial: 2, gpus_per_worker: 0.5}",
     "resources.gpus_per_worker", "whole GPUs"),
    ("name: x\nmethods: {ft: {batch_size: 64}}\nresources: {workers_per_trial: 3}", "methods.ft.batch_size",
     "multiple of 3"),
    ("name: x\nmethods: {ft: {}}\nresources: {workers_per_trial: 2}\nsearch: {scheduler: asha}", "search.scheduler",
     "use scheduler: fifo"),
    ("name: x\nmethods: {lp: {}}\nresources: {lp_gpus: 2}", "resources.lp_gpus", "at most 1"),
    ("name: x\nmethods: {ft: {}}\nresources: {cpus_per_trial: 1}", "resources.cpus_per_trial", "unknown key"),
    ("name: x\nmethods: {ft: {}}\nprecision: fp16", "precision", "not one of fp32, bf16"),
    ("name: x\nmethods: {ft: {}}\nschedule: batch", "schedule", "not one of epoch, step"),
    ("name: x\nmethods: {ft: {}}\ntransforms: timm", "transforms", "not one of paper, backbone"),
    ("name: x\nmethods: {ft: {}}\nmax_failures: -1", "max_failures", "0 or more"),
    ("name: x\nmethods: {lp: {l2: [0.1], C: [1.0]}}", "methods.lp", "give l2 or C, not both"),
])
def test_each_bad_config_gets_one_line_with_key_and_fix(tmp_path, capsys, text, key, fix):
    code, err = run_cli(capsys, "run", str(write(tmp_path, text)))
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {key}:") and fix in err[0]


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    code, err = run_cli(capsys, "run", str(write(tmp_path, "name: x\nmethods: {ft: [\n")))
    assert code == 2 and len(err) == 1
    assert "is not valid YAML" in err[0] and "line" in err[0]


def test_missing_config_and_results_dir(tmp_path, capsys):
    code, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"))
    assert code == 2 and len(err) == 1 and "no such config file" in err[0]
    code, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and len(err) == 1 and "no such study folder" in err[0]
    (tmp_path / "empty").mkdir()
    code, err = run_cli(capsys, "report", str(tmp_path / "empty"))
    assert code == 2 and len(err) == 1 and "no results table" in err[0]


def test_resume_needs_a_study_folder(tmp_path, capsys):
    code, err = run_cli(capsys, "resume", str(tmp_path))
    assert code == 2 and len(err) == 1 and "config.yaml: not found" in err[0]
    (tmp_path / "config.yaml").write_text("name: gone\nmethods: {lp: {}}\n")
    code, err = run_cli(capsys, "resume", str(tmp_path))
    assert code == 2 and len(err) == 1 and "no Ray Tune experiment to resume" in err[0]


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as error:
        parse_config({"name": "x", "seeds": [], "methods": {"ft": {"lr": [], "epochs": 0}}})
    keys = [line.split(":")[0] for line in error.value.problems]
    assert keys == ["seeds", "methods.ft.lr", "methods.ft.epochs"]


def test_overrides_apply_and_are_checked(tmp_path):
    study = load_config(QUICKSTART, ["seeds=[4]", "methods.ft.lr=[0.5]"], name="other")
    assert study.seeds == (4,) and study.methods["ft"]["lr"].values == (0.5,) and study.name == "other"
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(QUICKSTART, ["seeds"])


def test_console_script_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "study.cli", "run", str(write(tmp_path, "name: x\nmethods: 3"))],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: methods: expected a mapping of one or more of {', '.join(METHODS)}, e.g. `methods: {{ft: {{lr: "
        "[0.01]}}`"]


PRESETS = sorted(path for path in (ROOT / "search_spaces").rglob("*.yaml") if not path.name.startswith("_"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_resolved_config_reads_back_into_the_same_study(path):
    study = load_config(path)
    resolved = study.to_dict()
    assert parse_config(yaml.safe_load(yaml.safe_dump(resolved))) == study
    for method, params in resolved["methods"].items():
        defaults = set(METHODS[method].defaults()) - ({"l2"} if "C" in params else set())  # LP's C replaces l2
        assert defaults <= set(params), "every default is written out"


def test_the_json_schema_is_generated_from_the_config_and_checks_the_presets():
    import json

    import jsonschema

    from study.schema import study_schema

    committed = json.loads((ROOT / "search_spaces" / "study.schema.json").read_text())
    assert committed == json.loads(json.dumps(study_schema())), "regenerate it: study schema > search_spaces/..."
    for path in PRESETS:
        jsonschema.validate(yaml.safe_load(path.read_text()), committed)
        jsonschema.validate(yaml.safe_load(yaml.safe_dump(load_config(path).to_dict())), committed)
    with pytest.raises(jsonschema.ValidationError, match="'seds' was unexpected"):
        jsonschema.validate({"name": "x", "methods": {"lp": {}}, "seds": [0]}, committed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "methods": {"surgical": {"blocks": "top"}}}, committed)
