"""Files that installed packages ship (the text track's model zip and VADER's lexicon), found without importing
the package: an import may run code, and the model package's prints a line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

TEXT_EXTRA = 'pip install -e ".[text]"'


def packaged_file(module: str, name: str, *, distribution: str, needed_by: str, error: type[Exception]) -> Path:
    """File ``name`` beside module ``module``'s code; a missing package or file raises ``error`` in one line.
    ``distribution``: the PyPI name to reinstall; ``needed_by``: what reads it, as the message's opening."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise error(f"{needed_by}, which is not installed; install the text extra: {TEXT_EXTRA}")
    path = Path(spec.origin).parent / name
    if not path.is_file():
        raise error(f"{path}: missing from the {distribution} package; reinstall it: "
                    f"pip install --force-reinstall {distribution}")
    return path
