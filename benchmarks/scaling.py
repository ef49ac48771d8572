"""Training throughput with 1 and N data-parallel processes (torchrun + DDP), the same global batch.

    python -m benchmarks.scaling [--quick] [--corpus FILE] [--device cpu|cuda] [--procs 1,2]

Each variant is a real `lstmtext train` run in a subprocess (`--nproc N` for N > 1, so
torchrun, gloo on CPU or NCCL on GPU), trained for a fixed number of steps with the global
batch fixed; tokens/s is read from its metrics.jsonl (log records count the global batch),
the median over the log windows after the first (start-up, first allocations). Variants
run interleaved (1, 2, 2, 1, ...) so a busy phase of the machine falls on all alike; the
ratio is the median over rounds of N-process tokens/s over 1-process tokens/s.

On CPU a process gets `--threads` threads (default: cores / N), so 1 and N processes use
the same cores. `run(quick)` returns the rows for `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import cpu_model, result, synthetic_text

# A mid-sized char model: big enough that compute, not start-up, dominates each step.
MODEL = ["--layers", "2", "--hidden", "512", "--embed", "128", "--dropout", "0.2"]


def _corpus(path: Path | None, scratch: Path) -> Path:
    if path is not None:
        return path
    try:
        from lstmtext.corpora import resolve

        return resolve("tinyshakespeare", allow_download=False).path("text")
    except Exception:  # noqa: BLE001 - no corpus on disk: synthetic text
        synthetic = scratch / "synthetic.txt"
        synthetic.write_text(synthetic_text(1_100_000), encoding="utf-8")
        return synthetic


def train_tokens_per_second(
    corpus: Path, out: Path, nproc: int, *, steps: int, batch_size: int, seq_len: int, device: str,
    threads: int | None, timeout: float,
) -> float:  # fmt: skip
    """One `lstmtext train` run; median global tokens/s over its log windows but the first."""
    command = [
        sys.executable, "-m", "lstmtext", "train", str(corpus), "--out", str(out), *MODEL,
        "--batch-size", str(batch_size), "--seq-len", str(seq_len), "--max-steps", str(steps),
        "--eval-every", str(steps), "--eval-batches", "1", "--keep-last", "0", "--device", device,
        "--random-state", "1",
    ]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    env = os.environ | {"NO_COLOR": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    speeds = [r["tokens_per_second"] for r in records if r.get("kind") == "log"]
    if len(speeds) < 2:
        raise RuntimeError(f"too few log windows in {out / 'metrics.jsonl'}: use more steps")
    return statistics.median(speeds[1:])


def measure(
    corpus: Path | None, procs: list[int], device: str, quick: bool, threads: int | None = None
) -> list[dict[str, Any]]:
    steps = 60 if quick else 200
    batch_size, seq_len = 32, 100  # a multiple of every process count used here
    rounds = 1 if quick else 3
    cores = os.cpu_count() or 1
    speeds: dict[int, list[float]] = {n: [] for n in procs}
    with tempfile.TemporaryDirectory(prefix="lstmtext-scaling-") as scratch:
        root = Path(scratch)
        text = _corpus(corpus, root)
        for r in range(rounds):
            for n in procs if r % 2 == 0 else list(reversed(procs)):
                per_process = threads or (max(1, cores // n) if device == "cpu" else None)
                speeds[n].append(
                    train_tokens_per_second(
                        text, root / f"run-{n}-{r}", n, steps=steps, batch_size=batch_size, seq_len=seq_len,
                        device=device, threads=per_process, timeout=1800,
                    )
                )  # fmt: skip
    base = procs[0]
    rows = []
    for n in procs:
        ratio = statistics.median(a / b for a, b in zip(speeds[n], speeds[base], strict=True))
        rows.append(
            result(f"train {device} {n} process(es), global batch {batch_size}x{seq_len}",
                   statistics.median(speeds[n]), "tokens/s", f"{base} process(es)",
                   statistics.median(speeds[base]), ratio)
        )  # fmt: skip
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    return measure(None, [1, 2], "cpu", quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="training text (default: Tiny Shakespeare if on disk)")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    parser.add_argument("--procs", default="1,2", help="process counts, the first is the baseline")
    parser.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes)")
    parser.add_argument("--quick", action="store_true", help="one round of 60 steps")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    procs = [int(n) for n in args.procs.split(",")]
    rows = measure(args.corpus, procs, args.device, args.quick, args.threads)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; device {args.device}", file=sys.stderr)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{row['name']:<60} {row['value']:>10.0f} {row['unit']}  ratio {row['ratio']:.3f}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
