"""The method catalog is the one place a method's facts live: a new method is one entry and its function."""
import pandas as pd
import pytest

from helpers import features_of
from study.analysis.report import markdown, summary
from study.config import parse_config
from study.methods import fine_tune
from study.methods.catalog import _SGD, METHODS, Method
from study.methods.run import run_method
from study.results import rows_from_report, schema


def _ft_frozen_bn(setup, *, label_smoothing: float, **hparams):
    """A new method: FT with batch norm in eval mode (``label_smoothing`` only shows a new hyper-parameter)."""
    assert 0 <= label_smoothing < 1
    return fine_tune(setup.model, setup.pipeline, freeze_bn=True, **hparams, **setup.training)


@pytest.fixture
def new_method(monkeypatch):
    entry = Method("ftbn", "FT (frozen BN)", "tab:brown", {**_SGD, "label_smoothing": (float, 0.1)},
                   trains_encoder=True, lp_first=False, run=_ft_frozen_bn)
    monkeypatch.setitem(METHODS, "ftbn", entry)
    return entry


def test_a_new_method_is_one_catalog_entry_and_its_function(new_method, small_glyphs, cache_dir):
    study = parse_config({"name": "new", "methods": {"ftbn": {"lr": [0.01, 0.03], "epochs": 1, "batch_size": 32}}})
    assert study.methods["ftbn"]["label_smoothing"].values == (0.1,), "its defaults are the config's"
    assert study.to_dict()["methods"]["ftbn"]["momentum"] == 0.9
    assert study.resources.of_trial("ftbn") == study.resources.of_encoder_trials()
    assert "label_smoothing" in schema().names, "the results table has a column for its hyper-parameter"

    file, _ = features_of(small_glyphs, "glyphnet", cache_dir)
    hparams = {name: param.values[0] for name, param in study.methods["ftbn"].items()}
    results = list(run_method("ftbn", hparams, data=small_glyphs, features_file=file, backbone="glyphnet", seed=0,
                              cache_dir=cache_dir))
    assert [result.epoch for result in results] == [0, 1]

    rows = [row | {"outcome": "finished"} for result in results for row in rows_from_report(
        result.flat(), study="new", trial_id="t0", stage="search", method="ftbn", seed=0, hparams=hparams)]
    table = pd.DataFrame(rows)
    report = summary(table)
    assert set(report["selection"]["id_val"]) == {"ftbn"}
    assert "| FT (frozen BN) |" in markdown(table, report), "the report names it by its label"


def test_every_method_says_what_its_trials_need():
    assert [name for name, method in METHODS.items() if not method.trains_encoder] == ["lp"]
    assert {name for name, method in METHODS.items() if method.lp_first} == {"lpft", "lplora", "lpl2sp", "lpspd",
                                                                             "lpdora"}
    for name in (name for name, method in METHODS.items() if method.lp_first):
        base = METHODS[name[2:]]
        assert base.params.keys() == METHODS[name].params.keys() and not base.lp_first, f"{name} is {base.name} from LP"
    assert len({method.colour for method in METHODS.values()}) == len(METHODS), "one colour each in the figures"
    with pytest.raises(ValueError, match="methods.nope: unknown method; choose from lp, ft, lpft, lora, lplora, "
                                         "l2sp, "):
        parse_config({"name": "x", "methods": {"nope": {}}})
    with pytest.raises(ValueError, match="methods.surgical.blocks: 'top' is not one of first, middle, last"):
        parse_config({"name": "x", "methods": {"surgical": {"blocks": ["last", "top"]}}})
