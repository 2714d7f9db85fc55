"""Your own data: a benchmark declared in the study's YAML, read from image folders or from CSV / JSONL files.

    benchmark:
      images:                          # or `texts:` (CSV or JSONL files of text,label)
        name: hospitals                # optional: how tables, caches and MLflow name it (default: images / texts)
        root: /data/hospitals          # optional: relative paths below are read from it (default: --data-root, else
                                       # the current folder)
        train: hospital_a/train        # a folder in ImageFolder layout (<class>/<image>) or a CSV of path,label
        id_val: hospital_a/val
        id_test: hospital_a/test
        ood:                           # one or more OOD domains, each with a val (the oracle's) and a test split
          hospital_b: {val: hospital_b/val, test: hospital_b/test}
        classes: [benign, malignant]   # optional: the class list (default: the train split's, sorted)
        train_transform: [[random_resized_crop, 224], [flip]]   # optional: steps as in study/data/protocol.py
        test_transform: [[resize, 256], [center_crop, 224]]     # (default: the backbone's eval transform)

A split given as ``{file: metadata.csv, split: train}`` takes the rows of a file whose ``split`` column holds that
value (WILDS' metadata layout). A CSV's paths are read from the CSV's folder. Text files are CSV (columns ``text``
and ``label``) or JSONL (one ``{"text": ..., "label": ...}`` per line), UTF-8.

``parse_spec`` checks the mapping's shape with the rest of the config; ``build`` lists the files on the driver,
once per study, and refuses, in one line each and before any work: a missing split file or folder, an empty split,
a train split with fewer than two classes, a class in another split that train lacks (named), a label not in the
class list, a CSV without its columns, paths that do not exist (the first few named, with the count), a file in an
image folder that is not an image (its first bytes are no image format's), a text file that is not UTF-8 (its
line named). The benchmark's fingerprint hashes every file's path, size and modification time (and a text file's
content), so a changed file never reads stale cached features.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from study.cache import content_hash
from study.data.benchmark import ID_TEST, ID_VAL, TRAIN, Benchmark, Sentences
from study.data.files import DataError, ImageFiles
from study.data.protocol import STEPS, Protocol

KINDS = ("images", "texts")
SPLIT_KEYS = (TRAIN, ID_VAL, ID_TEST)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")  # JPEG, PNG, GIF, BMP, TIFF
SHOWN = 3  # missing paths named in a message


@dataclass(frozen=True)
class Source:
    """Where one split's examples are: a folder or file (relative to the root), and, for a file with a split
    column, the value that selects this split's rows."""

    path: str
    split: str | None = None

    def to_yaml(self):
        return self.path if self.split is None else {"file": self.path, "split": self.split}


@dataclass(frozen=True)
class FilesSpec:
    """A benchmark declared in the study file (see the module's docstring)."""

    kind: str
    name: str
    splits: dict[str, Source]
    root: str | None = None
    classes: tuple[str, ...] | None = None
    train_transform: tuple | None = None
    test_transform: tuple | None = None
    ood_domains: tuple[str, ...] = field(default=())

    def to_yaml(self) -> dict:
        """As the study file writes it."""
        body = {"name": self.name, **({"root": self.root} if self.root else {}),
                **{key: self.splits[key].to_yaml() for key in SPLIT_KEYS},
                "ood": {domain: {part: self.splits[f"{domain}_{part}"].to_yaml() for part in ("val", "test")}
                        for domain in self.ood_domains}}
        if self.classes:
            body["classes"] = list(self.classes)
        for key in ("train_transform", "test_transform"):
            if getattr(self, key) is not None:
                body[key] = [list(step) for step in getattr(self, key)]
        return {self.kind: body}

    def with_root(self, root: str) -> "FilesSpec":
        from dataclasses import replace

        return replace(self, root=root)


def parse_spec(value: dict, problems: list[str]) -> FilesSpec | None:
    """``benchmark: {images: {...}}`` or ``{texts: {...}}`` as a ``FilesSpec``; each problem appended as one line."""
    if len(value) != 1 or next(iter(value)) not in KINDS:
        problems.append(f"benchmark: expected a registered name or one of {{images: {{...}}}}, {{texts: {{...}}}} "
                        f"(your own data; see the README), got keys {sorted(value)}")
        return None
    kind, body = next(iter(value.items()))
    where = f"benchmark.{kind}"
    if not isinstance(body, dict):
        problems.append(f"{where}: expected a mapping of splits (train, id_val, id_test, ood), got {body!r}")
        return None
    allowed = {"name", "root", *SPLIT_KEYS, "ood", "classes", "train_transform", "test_transform"}
    problems.extend(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(allowed))}"
                    for key in body if key not in allowed)
    splits = {}
    for key in SPLIT_KEYS:
        splits[key] = _source(body.get(key), f"{where}.{key}", problems)
    ood = body.get("ood")
    if not isinstance(ood, dict) or not ood:
        problems.append(f"{where}.ood: expected one or more OOD domains, e.g. `ood: {{site_b: {{val: b/val, test: "
                        f"b/test}}}}`")
        ood = {}
    for domain, parts in ood.items():
        if not isinstance(domain, str) or not domain.replace("_", "").replace("-", "").isalnum():
            problems.append(f"{where}.ood.{domain}: a domain's name must be letters, digits, '-' and '_'")
        if not isinstance(parts, dict) or set(parts) != {"val", "test"}:
            problems.append(f"{where}.ood.{domain}: expected {{val: ..., test: ...}}, got {parts!r}")
            continue
        for part in ("val", "test"):
            splits[f"{domain}_{part}"] = _source(parts[part], f"{where}.ood.{domain}.{part}", problems)
    classes = body.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) < 2 or
                                len(set(map(str, classes))) != len(classes)):
        problems.append(f"{where}.classes: expected a list of two or more distinct class names, got {classes!r}")
        classes = None
    transforms = {key: _steps(body.get(key), f"{where}.{key}", problems) for key in ("train_transform",
                                                                                   "test_transform")}
    name = body.get("name", kind)
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        problems.append(f"{where}.name: {name!r} is not a valid name; use letters, digits, '-' and '_'")
        name = kind
    root = body.get("root")
    if root is not None and not isinstance(root, str):
        problems.append(f"{where}.root: expected a folder path, got {root!r}")
        root = None
    if any(source is None for source in splits.values()):
        return None
    return FilesSpec(kind=kind, name=name, splits=splits, root=root,
                     classes=tuple(map(str, classes)) if classes else None, ood_domains=tuple(ood), **transforms)


def _source(value, where: str, problems: list[str]) -> Source | None:
    if isinstance(value, str) and value:
        return Source(value)
    if isinstance(value, dict) and set(value) == {"file", "split"} and all(isinstance(v, str) for v in
                                                                           value.values()):
        return Source(value["file"], value["split"])
    problems.append(f"{where}: missing or not a path; give a folder or file, or {{file: metadata.csv, split: "
                    f"VALUE}}, got {value!r}")
    return None


def _steps(value, where: str, problems: list[str]) -> tuple | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(step, list) and step and step[0] in STEPS for step in value):
        problems.append(f"{where}: expected a list of steps like [[resize, 256], [center_crop, 224]]; steps: "
                        f"{', '.join(STEPS)}")
        return None
    return tuple(tuple(step) for step in value)


def build(spec: FilesSpec, data_root=None) -> Benchmark:
    """List (or read) every split; refuse whatever would fail later, in one line."""
    root = Path(spec.root or data_root or ".").expanduser().resolve()
    reader = _image_split if spec.kind == "images" else _text_split
    raw = {name: reader(root, source, name) for name, source in spec.splits.items()}
    for name, (_, labels, _) in raw.items():
        if not labels:
            raise DataError(f"{_where(root, spec.splits[name])}: the {name} split is empty; give it examples")
    train_classes = sorted(set(raw[TRAIN][1]))
    classes = list(spec.classes) if spec.classes else train_classes
    if len(train_classes) < 2:
        raise DataError(f"{_where(root, spec.splits[TRAIN])}: the train split has {len(train_classes)} class "
                        f"({', '.join(train_classes)}); a classifier needs two or more")
    for name, (_, labels, _) in raw.items():
        if unknown := sorted(set(labels) - set(classes)):
            raise DataError(f"{_where(root, spec.splits[name])}: label {unknown[0]!r} of the {name} split is not in "
                            f"the class list ({', '.join(classes)})" + ("" if spec.classes else
                                                                        "; the train split lacks it"))
    if untrained := sorted(set(classes) - set(train_classes)):
        raise DataError(f"{_where(root, spec.splits[TRAIN])}: the train split has no example of class "
                        f"{untrained[0]!r}; add some, or leave it out of classes")
    index = {name: i for i, name in enumerate(classes)}
    splits, stamps = {}, []
    for name, (items, labels, stamp) in raw.items():
        targets = [index[label] for label in labels]
        splits[name] = (ImageFiles(items, targets) if spec.kind == "images" else
                        Sentences(items, torch.tensor(targets, dtype=torch.long)))
        stamps.append((name, stamp))
    protocol = None
    if spec.train_transform is not None or spec.test_transform is not None:
        protocol = Protocol(train=spec.train_transform or spec.test_transform or (),
                            test=spec.test_transform or (), mean=None, std=None)
    return Benchmark(name=spec.name, classes=tuple(classes), ood_domains=spec.ood_domains, splits=splits,
                     fingerprint=content_hash("files", spec.to_yaml(), str(root), classes, stamps),
                     source=str(root), protocol=protocol)


def _where(root: Path, source: Source) -> str:
    path = root / source.path
    return f"{path} (split {source.split!r})" if source.split is not None else str(path)


def _image_split(root: Path, source: Source, name: str) -> tuple[list[str], list[str], str]:
    """(image paths, class names, a stamp of the files) of one split: an ImageFolder tree, or a CSV of path,label."""
    path = root / source.path
    if not path.exists():
        raise DataError(f"{path}: not found (the {name} split); give the folder or CSV that holds it")
    if path.is_dir():
        if source.split is not None:
            raise DataError(f"{path}: a folder, but a split column ({source.split!r}) needs a CSV file")
        pairs = [(str(file), folder.name) for folder in sorted(p for p in path.iterdir() if p.is_dir())
                 for file in sorted(folder.rglob("*")) if file.is_file() and not file.name.startswith(".")]
        if strays := [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]:
            raise DataError(f"{strays[0]}: a file directly in {path}; an image folder holds one folder per class "
                            "(<split>/<class>/<image>)")
    else:
        rows = _table_rows(path, source, ("path", "label"))
        pairs = [(str((path.parent / row["path"]).resolve()), row["label"]) for row in rows]
        missing = [p for p, _ in pairs if not os.path.isfile(p)]
        if missing:
            shown = ", ".join(missing[:SHOWN])
            raise DataError(f"{path}: {len(missing)} of its {len(pairs)} paths do not exist (the {name} split), "
                            f"e.g. {shown}; paths are read from the CSV's folder")
    stamp = content_hash([(p, *_image_stamp(p)) for p, _ in pairs])
    return [p for p, _ in pairs], [label for _, label in pairs], stamp


def _image_stamp(path: str) -> tuple[int, int]:
    """(size, mtime) of an image file whose first bytes are an image format's; else one line naming it."""
    with open(path, "rb") as opened:
        head = opened.read(12)
    if not (head.startswith(_MAGIC) or head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise DataError(f"{path}: not an image (its first bytes are no JPEG, PNG, GIF, WebP, BMP or TIFF header); "
                        "remove it from the folder, or replace it with the image it should be")
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def _text_split(root: Path, source: Source, name: str) -> tuple[list[str], list[str], str]:
    path = root / source.path
    if not path.is_file():
        raise DataError(f"{path}: not found (the {name} split); give the CSV or JSONL file that holds it")
    rows = _table_rows(path, source, ("text", "label"))
    return [row["text"] for row in rows], [row["label"] for row in rows], content_hash(
        [(row["text"], row["label"]) for row in rows])


def _table_rows(path: Path, source: Source, columns: tuple[str, str]) -> list[dict[str, str]]:
    """The rows of a CSV or JSONL file (those of ``source.split`` where given), each value a string; a file not in
    UTF-8, or without ``columns`` (and ``split``), is one line."""
    text = _utf8(path)
    needed = (*columns, "split") if source.split is not None else columns
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not an object")
            except ValueError as error:
                raise DataError(f"{path}:{number}: not a JSON object ({error}); one {{\"{columns[0]}\": ..., "
                                f"\"{columns[1]}\": ...}} per line") from None
            if missing := [c for c in needed if c not in row]:
                raise DataError(f"{path}:{number}: no {missing[0]!r} key; each line needs {', '.join(needed)}")
            rows.append({key: str(row[key]) for key in needed})
    else:
        reader = csv.DictReader(io.StringIO(text))
        if missing := [c for c in needed if c not in (reader.fieldnames or [])]:
            raise DataError(f"{path}: no {missing[0]!r} column (its columns: {', '.join(reader.fieldnames or [])}); "
                            f"it needs {', '.join(needed)}")
        rows = [{key: row[key] or "" for key in needed} for row in reader]
    if source.split is not None:
        rows = [row for row in rows if row["split"] == source.split]
    return rows


def _utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 ({error.reason} at byte {error.start}); save the file as UTF-8 "
                        f"(e.g. iconv -f latin1 -t utf-8)") from None
