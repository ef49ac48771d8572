"""Benchmarks for lstmtext: `python -m benchmarks [--quick] [--json] [--only NAME]`.

Each benchmark module exposes ``run(quick: bool) -> list[dict]``; a row is a ``result(...)``.
Speed figures are ratios against a baseline timed in the same process, interleaved
(A B B A ...), because the machines this runs on are shared: the same step swings by a
third over an hour, while same-run ratios hold to a few percent.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def result(
    name: str,
    value: float,
    unit: str,
    baseline: str | None = None,
    baseline_value: float | None = None,
    ratio: float | None = None,
) -> dict[str, Any]:
    """One row. ratio defaults to value / baseline_value."""
    if ratio is None and baseline_value:
        ratio = value / baseline_value
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": ratio,
    }


def split_at_dashes(argv: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(the benchmark's own arguments, the `lstmtext train` options after `--`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        return args, []
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (recorded with every figure)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Interleaved:
    """Times several variants in alternating rounds; each variant is `run(steps) -> seconds per step`.

    Round r runs every variant in turn, in reversed order on odd rounds, so that a slow
    phase of the machine falls on all of them alike. Ratios are medians of per-round ratios.
    """

    def __init__(self, variants: dict[str, Callable[[int], float]]) -> None:
        self.variants = variants
        self.times: dict[str, list[float]] = {name: [] for name in variants}

    def run(self, rounds: int, steps: int, warmup: int = 1) -> None:
        names = list(self.variants)
        for name in names:
            if warmup:
                self.variants[name](warmup + 1)
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                self.times[name].append(self.variants[name](steps))

    def per_second(self, name: str, work: float) -> float:
        """Median throughput (work units per second) over the rounds."""
        return work / statistics.median(self.times[name])

    def ratio(self, name: str, baseline: str) -> float:
        """Median over rounds of baseline time / variant time (> 1: the variant is faster)."""
        return statistics.median(b / a for a, b in zip(self.times[name], self.times[baseline], strict=True))

    def spread(self, name: str, baseline: str) -> tuple[float, float]:
        ratios = [b / a for a, b in zip(self.times[name], self.times[baseline], strict=True)]
        return min(ratios), max(ratios)


def seconds_per_step(stamps: Sequence[float]) -> float:
    """Mean interval between step-end timestamps: k stamps cover k - 1 whole loop iterations.

    The first step of a segment is left out, so switching variants (cold caches, oneDNN
    primitives) does not count against whichever runs first.
    """
    if len(stamps) < 2:
        raise ValueError("need at least two timestamps")
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


_COMMON_WORDS = (
    "the of and to a in that is was he for it with as his on be at by i this had not are but from or "
    "have an they which one you were her all she there would their we him been has when who will "
    "more no if out so said what up its about into than them can only other new some could time "
    "these two may then do first any my now such like our over man me even most made after also did "
    "many before must through back years where much your way well down should because each just "
    "those people mr how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three"
)
_WORDS = _COMMON_WORDS.split()


def synthetic_text(num_bytes: int, seed: int = 0) -> str:
    """Deterministic English-like ASCII text: common words, capitals, punctuation, line breaks."""
    rng = np.random.default_rng(seed)
    words = np.array(_WORDS)
    lines: list[str] = []
    size = 0
    while size < num_bytes:
        picks = words[rng.integers(0, len(words), size=int(rng.integers(6, 14)))].tolist()
        picks[0] = picks[0].capitalize()
        line = " ".join(picks) + str(rng.choice([".", ",", ";", "?", "!", ":"]))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:num_bytes]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main_in_scratch(measure: Callable[[Path], list[dict[str, Any]]], as_json: bool) -> int:
    """A measuring script's main: the machine on stderr, `measure` in a scratch folder that is
    removed after, its rows on stdout (JSON lines with `as_json`)."""
    import json
    import tempfile

    started = time.perf_counter()
    print(f"CPU: {cpu_model()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(Path(folder))
    for row in rows:
        if as_json:
            print(json.dumps(row))
            continue
        versus = "" if row["baseline_value"] is None else f" ({row['baseline']}: {row['baseline_value']:.4f})"
        print(f"{row['name']}: {row['value']:.4f} {row['unit']}{versus}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0
