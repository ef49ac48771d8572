"""The learning curve of a run, as BENCHMARKS.md shows it: validation loss against minutes.

    python -m benchmarks.curve runs/shakespeare [--every 2] [--png docs/shakespeare-curve.png]

Reads the run's metrics.jsonl (one JSON object per line; evaluations carry `val_loss`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lstmtext.runs.run_directory import read_metrics


def evaluations(run_dir: Path) -> list[dict[str, float]]:
    return [record for record in read_metrics(run_dir) if "val_loss" in record]


def markdown(rows: list[dict[str, float]], every: int) -> str:
    best = min((r["val_loss"] for r in rows), default=math.nan)
    lines = ["| minutes | step | train loss | val loss | val ppl |", "|---:|---:|---:|---:|---:|"]
    for index, row in enumerate(rows):
        if index % every and index != len(rows) - 1 and row["val_loss"] != best:
            continue
        mark = " (best)" if row["val_loss"] == best else ""
        lines.append(
            f"| {row['elapsed'] / 60:.1f} | {int(row['step'])} | {row.get('loss', math.nan):.3f} "
            f"| {row['val_loss']:.4f}{mark} | {math.exp(row['val_loss']):.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=120)
    axes.plot(
        [r["elapsed"] / 60 for r in rows], [r["val_loss"] for r in rows], marker=".", label="validation"
    )
    axes.plot([r["elapsed"] / 60 for r in rows], [r["loss"] for r in rows], alpha=0.6, label="training")
    axes.set_xlabel("minutes")
    axes.set_ylabel("loss (nats/token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curve", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "--every", type=int, default=1, help="print every Nth evaluation (and the best, the last)"
    )
    parser.add_argument("--png", type=Path, help="also draw the curve into this PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    rows = evaluations(args.run_dir)
    if not rows:
        print(f"{args.run_dir}: no evaluations in metrics.jsonl", file=sys.stderr)
        return 1
    print(markdown(rows, max(1, args.every)))
    if args.png:
        plot(rows, args.png, args.run_dir.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
