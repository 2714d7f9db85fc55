"""The documentation: every config key, every method's hyper-parameter and every command (with its options) is in
the docs, and the site builds with `mkdocs build --strict` (a broken link or a missing page fails it)."""
import re
import subprocess
import sys
from dataclasses import fields

from helpers import ROOT
from study.cli import parser
from study.config import ResourcesConfig, SearchConfig, SelectionConfig, StudyConfig
from study.methods.catalog import METHODS

DOCS = ROOT / "docs"


def documented(page: str) -> set[str]:
    """Every `code` span of a docs page."""
    return set(re.findall(r"`([^`\n]+)`", (DOCS / page).read_text()))


def test_every_config_key_is_documented():
    spans = documented("configuration.md")
    keys = {f.name for f in fields(StudyConfig)} - {"lpft_head", "files"} | {"lpft_head_l2", "lpft_head_C", "base"}
    keys |= {f"{section}.{f.name}" for section, config in (("search", SearchConfig), ("resources", ResourcesConfig),
                                                            ("selection", SelectionConfig)) for f in fields(config)}
    text = (DOCS / "configuration.md").read_text()
    missing = sorted(key for key in keys if key not in spans and f"`{key}`" not in text
                     and not any(key in span for span in spans))
    assert not missing, f"docs/configuration.md lacks {missing}"
    method_docs = (DOCS / "methods.md").read_text() + text
    for name, method in METHODS.items():
        assert f"`{name}`" in method_docs, f"method {name} is in neither docs/methods.md nor configuration.md"
        for param in method.params:
            assert f"`{param}`" in method_docs or param in " ".join(spans), f"{name}.{param} is not documented"


def test_every_command_and_its_options_are_documented():
    text = (DOCS / "commands.md").read_text() + (DOCS / "configuration.md").read_text()
    commands = next(action for action in parser()._actions if action.__class__.__name__ == "_SubParsersAction")
    assert commands.choices, "the CLI has sub-commands"
    for name, command in commands.choices.items():
        assert f"`study {name}" in text, f"`study {name}` is not in docs/commands.md"
        for option in (o for action in command._actions for o in action.option_strings if o.startswith("--")):
            assert option in text or option == "--help", f"`study {name} {option}` is not documented"
    assert "`study --version`" in text


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                           "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "own-data" / "index.html").is_file() and (tmp_path / "methods" / "index.html").is_file()
