"""Search efficiency: the quickstart's full grid against ASHA early stopping, and against Optuna (TPE) with ASHA.

    python benchmarks/search_efficiency.py [--optuna-samples 8]

Each arm runs `study run search_spaces/quickstart.yaml` in a temporary results folder with the user's caches:

- ``grid``: every configuration, every epoch (FIFO);
- ``asha``: the same grid under ASHA (``search.scheduler=asha``, ``grace_epochs=2``) on ID-val accuracy;
- ``optuna+asha``: Optuna's TPE sampler proposes ``--optuna-samples`` configurations (a method first, then its
  hyper-parameters from the same grids), each run for every seed, under the same ASHA.

Printed per method and arm: trial-epochs spent (the sum over trials of the epochs each ran) and the selected ID-val
accuracy (the selection criterion, mean over seeds); "-" where an arm never tried a method. Goal: >= 3x fewer
trial-epochs for the same selected accuracy (within 0.3 pp).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from study.results import read_table

ROOT = Path(__file__).resolve().parents[1]


def run(results: str, name: str, *overrides: str) -> tuple[dict, dict]:
    command = [sys.executable, "-m", "study.cli", "run", str(ROOT / "search_spaces" / "quickstart.yaml"),
               "--results-dir", results, "--name", name, "--no-progress", "--json", "--set", "wise_alphas=[]",
               *overrides]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    table = read_table(Path(results) / name)
    spent = table.groupby(["method", "trial_id"])["epoch"].max().groupby("method").sum().to_dict()
    criterion = {method: pick["criterion"] for method, pick in report["chosen"]["id_val"].items()}
    return spent, criterion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optuna-samples", type=int, default=8)
    args = parser.parse_args()
    asha = ["--set", "search.scheduler=asha", "--set", "search.grace_epochs=2"]
    with tempfile.TemporaryDirectory() as results:
        arms = {"grid": run(results, "grid"), "asha": run(results, "asha", *asha),
                "optuna+asha": run(results, "optuna", *asha, "--set", "search.algorithm=optuna",
                                   "--set", f"search.num_samples={args.optuna_samples}")}
    grid_spent, grid_acc = arms["grid"]
    print("| method | arm | trial-epochs | selected ID val | fewer trial-epochs than the grid | accuracy difference |\n"
          "|---|---|---|---|---|---|")
    for method in grid_spent:
        for arm, (spent, accuracy) in arms.items():
            if method not in spent or method not in accuracy:
                print(f"| {method} | {arm} | - | - | - | - |")
                continue
            print(f"| {method} | {arm} | {spent[method]} | {accuracy[method]:.2f} | "
                  f"{grid_spent[method] / spent[method]:.2f}x | {accuracy[method] - grid_acc[method]:+.2f} pp |")
    total = sum(grid_spent.values())
    for arm, (spent, _) in arms.items():
        used = sum(spent.values())
        print(f"\n{arm}: {used} trial-epochs in all ({total / used:.2f}x fewer than the grid)")


if __name__ == "__main__":
    main()
