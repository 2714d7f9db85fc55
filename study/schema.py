"""The study file's JSON Schema, generated from the config's one definition (``study.config``'s dataclasses and the
method catalog), so that editors complete and check its keys: ``study schema > study.schema.json`` and, at the top
of a YAML, ``# yaml-language-server: $schema=study.schema.json``."""
from __future__ import annotations

import typing
from dataclasses import MISSING, fields

from study.config import (DISTRIBUTIONS, OPTIMIZERS, PRECISIONS, SCHEDULERS, SCHEDULES, SEARCH_ALGORITHMS, TRANSFORMS,
                          ResourcesConfig, SearchConfig, SelectionConfig, StudyConfig)
from study.methods.catalog import METHODS

NUMBER = {"type": "number"}
CHOICES = {"precision": PRECISIONS, "schedule": SCHEDULES, "optimizer": OPTIMIZERS, "transforms": TRANSFORMS}


def _scalar(kind) -> dict:
    if isinstance(kind, tuple):
        return {"enum": list(kind)}
    return {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[kind]}


def hyper_parameter(kind) -> dict:
    """A value, a grid (a list), a logspace, or a distribution, of one hyper-parameter."""
    one = _scalar(kind)
    distributions = [{"type": "object", "properties": {name: {"type": "array"}}, "required": [name],
                      "additionalProperties": False} for name in DISTRIBUTIONS]
    logspace = {"type": "object", "required": ["logspace"], "additionalProperties": False,
                "properties": {"logspace": {"type": "array", "items": NUMBER, "minItems": 3, "maxItems": 3}}}
    return {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}, logspace, *distributions]}


def _section(config: type) -> dict:
    hints = typing.get_type_hints(config)
    return {"type": "object", "additionalProperties": False,
            "properties": {item.name: {**_scalar(hints[item.name]), "default": item.default}
                           for item in fields(config)}}


def study_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a study file."""
    from study.data import list_benchmarks
    from study.models import list_backbones

    methods = {name: {"type": ["object", "null"], "additionalProperties": False,
                      "description": f"{method.label}: {', '.join(method.params)}",
                      "properties": {param: hyper_parameter(kind) for param, (kind, _) in method.params.items()}}
               for name, method in METHODS.items()}
    files = {"type": "object", "description": "your own data: folders, CSV or JSONL files (docs/own-data.md)"}
    properties = {
        "base": {"type": "string", "description": "a study file this one extends (its values under this file's)"},
        "name": {"type": "string", "pattern": "^[^/\\\\ ]+$"},
        "benchmark": {"anyOf": [{"enum": list_benchmarks()},
                                {"type": "object", "properties": {"images": files, "texts": files},
                                 "minProperties": 1, "maxProperties": 1}]},
        "backbone": {"anyOf": [{"enum": list_backbones()}, {"type": "string", "pattern": "^(timm/|transformers:)"},
                               {"type": "object", "minProperties": 1, "maxProperties": 1,
                                "properties": {"timm": {"type": "string"}, "transformers": {"type": "string"}}}]},
        "input_size": {"type": ["integer", "null"], "minimum": 1},
        "seeds": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1}]},
        "methods": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": methods},
        "lpft_head_l2": hyper_parameter(float), "lpft_head_C": hyper_parameter(float),
        "wise_alphas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "soups": {"type": "boolean"},
        **{key: {"enum": list(options)} for key, options in CHOICES.items()},
        "search": {**_section(SearchConfig)},
        "selection": _section(SelectionConfig),
        "resources": _section(ResourcesConfig),
        "max_failures": {"type": "integer", "minimum": 0},
        **{key: {"type": ["string", "null"]} for key in ("results_dir", "storage", "data_root", "backbone_weights",
                                                         "cache_dir", "tracking_uri")},
        "system_metrics": {"type": "boolean"},
    }
    properties["search"]["properties"]["algorithm"] = {"enum": list(SEARCH_ALGORITHMS)}
    properties["search"]["properties"]["scheduler"] = {"enum": list(SCHEDULERS)}
    keys = {item.name for item in fields(StudyConfig)} - {"lpft_head", "files"} | {"lpft_head_l2", "lpft_head_C"}
    missing = keys - set(properties)
    assert not missing, f"the schema lacks {missing}"  # the config's definition grew: describe the new key here
    defaults = {item.name: item.default for item in fields(StudyConfig)
                if item.default is not MISSING and isinstance(item.default, (int, float, str, bool))}
    for key, value in defaults.items():
        properties[key].setdefault("default", value)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lpft-study study file",
            "type": "object", "anyOf": [{"required": ["base"]}, {"required": ["name", "methods"]}],
            "additionalProperties": False,
            "properties": properties}
