"""`python -m benchmarks [--quick] [--json] [--only NAME]`: run the benchmarks, print a table.

With --json, one JSON object per row on stdout:
{"name", "value", "unit", "baseline", "baseline_value", "ratio"}. The table, the machine
(lscpu model name, torch version, threads, date, command) and notes go to stderr then, so
stdout stays machine-readable.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import platform
import shlex
import sys
import time
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks import cpu_model

# Written by different hands; a missing or broken one is skipped with a note.
MODULES = (
    "training",
    "end_to_end",
    "word_softmax",
    "tokenize_speed",
    "corpus_prep",
    "generation",
    "classification",
    "calibration",
    "finetune",
)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    parser.add_argument("--only", action="append", choices=MODULES, help="run only this module (repeatable)")
    args = parser.parse_args(argv)

    console = Console(stderr=args.json)
    notes = Console(stderr=True)
    machine = cpu_model()
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes.print(
        f"{date}; command: {command}\n"
        f"CPU: {machine}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; "
        f"Python {platform.python_version()}; {'quick' if args.quick else 'full'} run",
        highlight=False,
    )
    table = Table(title=f"lstmtext benchmarks ({machine}, {torch.get_num_threads()} threads, {date})")
    for column in ("name", "value", "unit", "baseline", "baseline value", "ratio"):
        table.add_column(column, justify="left" if column in ("name", "unit", "baseline") else "right")

    failed = False
    started = time.perf_counter()
    for name in args.only or MODULES:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as error:
            notes.print(f"[yellow]skipped[/] benchmarks.{name}: not importable ({error})")
            continue
        if not hasattr(module, "run"):
            notes.print(f"[yellow]skipped[/] benchmarks.{name}: has no run(quick)")
            continue
        notes.print(f"running benchmarks.{name} ...")
        module_start = time.perf_counter()
        try:
            rows = module.run(args.quick)
        except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others
            notes.print(f"[red]failed[/] benchmarks.{name}: {type(error).__name__}: {error}")
            failed = True
            continue
        notes.print(f"benchmarks.{name}: {time.perf_counter() - module_start:.0f} s")
        for row in rows:
            if args.json:
                print(json.dumps(row), flush=True)
            table.add_row(
                row["name"],
                _number(row["value"]),
                row["unit"],
                row["baseline"] or "-",
                _number(row["baseline_value"]),
                "-" if row["ratio"] is None else f"{row['ratio']:.3f}",
            )
    console.print(table)
    notes.print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
