"""Running the `study` command as a user does, in a subprocess."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_command(*args) -> list[str]:
    return [sys.executable, "-m", "study.cli", *map(str, args)]


def run_study_cli(config: str, results: Path, *args, timeout: int = 300) -> dict:
    """`study run search_spaces/CONFIG --results-dir RESULTS --json ARGS...`; returns the printed report."""
    command = study_command("run", ROOT / "search_spaces" / config, "--results-dir", results, "--no-progress",
                            "--json", *args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
