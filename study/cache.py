"""The on-disk cache for generated data, pretrained backbones and extracted features.

Entries are keyed by a content hash of everything that determines them, so a changed recipe never reads a stale
file. ``cached`` computes an entry once across concurrent processes (Ray trials, several drivers): a file lock
guards the computation and the file appears atomically, complete or not at all.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock

ENV_VAR = "LPFT_CACHE_DIR"


def cache_root(configured: str | os.PathLike | None = None) -> Path:
    """The cache folder: the config's ``cache_dir``, else ``$LPFT_CACHE_DIR``, else ``~/.cache/lpft-study``."""
    root = configured or os.environ.get(ENV_VAR) or Path.home() / ".cache" / "lpft-study"
    return Path(root).expanduser().resolve()


def content_hash(*parts) -> str:
    """A short, stable hash of JSON-able parts (recipes, versions, other hashes)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(path: Path, compute: Callable[[], object], *, load: bool = True, mmap: bool = False):
    """Load ``path`` (a ``torch.save`` file), or compute, save and return its content if it is absent. With
    ``load=False`` the file is only made sure of (and None returned): a big entry is not read back for nothing;
    with ``mmap=True`` it is memory-mapped, so only what the caller touches is read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with FileLock(str(path) + ".lock"):
            if not path.exists():  # else another process finished it while we waited
                value = compute()
                partial = path.with_name(path.name + f".{os.getpid()}.partial")
                torch.save(value, partial)
                os.replace(partial, path)
                return value if load else None
    return torch.load(path, weights_only=True, mmap=mmap) if load else None
