"""Search efficiency: the quickstart's full grid against the same grid under ASHA early stopping.

    python benchmarks/search_efficiency.py

Both run `study run search_spaces/quickstart.yaml` (the second with `search.scheduler=asha`) in a temporary results
folder with the user's caches. Printed per method: trial-epochs spent (the sum over trials of the epochs each ran) and
the selected ID-val accuracy (the selection criterion, mean over seeds). Goal: >= 3x fewer trial-epochs for the same
selected accuracy (within 0.3 pp).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from study.results import read_table

ROOT = Path(__file__).resolve().parents[1]


def run(results: str, name: str, *overrides: str) -> tuple[dict, dict]:
    command = [sys.executable, "-m", "study.cli", "run", str(ROOT / "search_spaces" / "quickstart.yaml"),
               "--results-dir", results, "--name", name, "--no-progress", "--json", *overrides]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    table = read_table(Path(results) / name)
    spent = table.groupby(["method", "trial_id"])["epoch"].max().groupby("method").sum().to_dict()
    criterion = {method: pick["criterion"] for method, pick in report["chosen"]["id_val"].items()}
    return spent, criterion


def main() -> None:
    with tempfile.TemporaryDirectory() as results:
        grid = run(results, "grid")
        asha = run(results, "asha", "--set", "search.scheduler=asha", "--set", "search.grace_epochs=2")
    print("| method | grid: trial-epochs | grid: selected ID val | ASHA: trial-epochs | ASHA: selected ID val | "
          "fewer trial-epochs | accuracy difference |\n|---|---|---|---|---|---|---|")
    for method in grid[0]:
        g_spent, g_acc, a_spent, a_acc = grid[0][method], grid[1][method], asha[0][method], asha[1][method]
        print(f"| {method} | {g_spent} | {g_acc:.2f} | {a_spent} | {a_acc:.2f} | {g_spent / a_spent:.2f}x | "
              f"{a_acc - g_acc:+.2f} pp |")
    total_g, total_a = sum(grid[0].values()), sum(asha[0].values())
    print(f"\nall methods: {total_g} vs {total_a} trial-epochs ({total_g / total_a:.2f}x fewer with ASHA)")


if __name__ == "__main__":
    main()
