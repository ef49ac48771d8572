"""Corpora larger than memory: token-id cache preparation and training from the memory map.

A generated text file (2 GB; 100 MB with --quick) is written under the system temp dir, never
into the repository, and removed afterwards. Three child processes are measured, each
reporting its own peak RSS (VmHWM of /proc/self/status, read at exit):

1. Python with torch and lstmtext imported, nothing else: the floor under the others.
2. `cached_ids` on the file, with the tokenizer `lstmtext train` would train on the file's
   first TOKENIZER_SAMPLE_BYTES: MB/s and peak RSS of the preparation.
3. The real `lstmtext train` command on the same file and cache dir (a cache hit, so the ids are
   memory-mapped, not made again): peak RSS of training from the memory map.

The parent's ru_maxrss of a child is no measure: Linux carries the parent's RSS at fork into
the child's maximum, and the runner holds a trained model by then.

The MB/s baseline is `encode_array` on the file's first 32 MB already in memory, timed in
the same child just before and just after the preparation: the ratio is what reading in
chunks and writing the cache cost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import result, synthetic_text
from lstmtext.config import TokenizerConfig
from lstmtext.data.bigcorpus import TOKENIZER_SAMPLE_BYTES, read_sample
from lstmtext.data.tokenizer import TextTokenizer

FULL_BYTES = 2 * 1000**3
QUICK_BYTES = 100 * 1000**2
RSS_TARGET_MB = 1536  # for the 2 GB file

# Runs `-m MODULE ARGS` or `-c CODE ARGS` and writes its peak RSS (kB) to REPORT at exit.
_PEAK_RSS = """
import atexit, runpy, sys
from pathlib import Path
report, kind, target, *args = sys.argv[1:]
def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(report).write_text(line.split()[1])
atexit.register(peak)
sys.argv = [target, *args]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
"""

_PREPARE = """
import json, sys, time
from pathlib import Path
from lstmtext.data.corpus import cached_ids
from lstmtext.data.tokenizer import TextTokenizer
corpus, tokenizer_path, cache_dir, report = sys.argv[1:5]
tokenizer = TextTokenizer.load(Path(tokenizer_path))
def in_memory():
    with open(corpus, "rb") as file:
        text = file.read(32 << 20).decode("utf-8", "ignore")
    start = time.perf_counter()
    tokenizer.encode_array(text)
    return len(text) / 1e6 / (time.perf_counter() - start)
before = in_memory()
start = time.perf_counter()
ids = cached_ids(Path(corpus), tokenizer, Path(cache_dir))
elapsed = time.perf_counter() - start
baseline = (before + in_memory()) / 2
Path(report).write_text(json.dumps({"seconds": elapsed, "tokens": len(ids), "baseline_mb_s": baseline}))
"""

_IMPORTS_ONLY = "import torch, lstmtext.data.corpus, lstmtext.data.tokenizer, lstmtext.training.loop"


def write_corpus(path: Path, num_bytes: int) -> None:
    """num_bytes of synthetic text: a 4 MB block written over and over (tokenising does not care)."""
    block = (synthetic_text(4 << 20, seed=1) + "\n").encode("ascii")
    with path.open("wb") as file:
        remaining = num_bytes
        while remaining > 0:
            file.write(block[:remaining])
            remaining -= len(block)


def measured(kind: str, target: str, args: list[str], report: Path) -> tuple[float, float, str]:
    """Run `python kind target args`; (seconds, its peak RSS in MB, stderr tail). Raises if it fails."""
    command = [sys.executable, "-c", _PEAK_RSS, str(report), kind, target, *args]
    start = time.perf_counter()
    process = subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{kind} {target[:40]!r} failed ({process.returncode}): {process.stderr[-2000:]}")
    return seconds, int(report.read_text()) / 1024, process.stderr[-2000:]


def run(quick: bool) -> list[dict[str, Any]]:
    if not Path("/proc/self/status").exists():
        raise RuntimeError("peak RSS is read from /proc/self/status: Linux only")
    num_bytes = QUICK_BYTES if quick else FULL_BYTES
    megabytes = num_bytes / 1e6
    label = f"{num_bytes / 1e9:g}GB" if num_bytes >= 1e9 else f"{megabytes:g}MB"
    tmp = Path(tempfile.mkdtemp(prefix="lstmtext-bench-corpus-"))
    try:
        corpus, cache = tmp / "big.txt", tmp / "cache"
        write_corpus(corpus, num_bytes)
        # The tokenizer `lstmtext train` trains on a big corpus: the same sample, the same config.
        tokenizer = TextTokenizer.train(
            [read_sample(corpus, TOKENIZER_SAMPLE_BYTES)], TokenizerConfig("char")
        )
        tokenizer.save(tmp / "tokenizer.json")

        _, imports_rss, _ = measured("-c", _IMPORTS_ONLY, [], tmp / "imports.rss")
        report = tmp / "report.json"
        prepare_args = [str(corpus), str(tmp / "tokenizer.json"), str(cache), str(report)]
        _, prep_rss, _ = measured("-c", _PREPARE, prepare_args, tmp / "prepare.rss")
        prep = json.loads(report.read_text())
        train_args = [
            *("train", str(corpus), "--cache-dir", str(cache), "--out", str(tmp / "run")),
            *("--max-steps", "3", "--eval-batches", "2", "--layers", "1", "--hidden", "64"),
            *("--embed", "16", "--device", "cpu"),
        ]
        train_seconds, train_rss, train_log = measured("-m", "lstmtext", train_args, tmp / "train.rss")
        if "tokenising" in train_log:
            raise RuntimeError("lstmtext train tokenised the corpus again instead of using the cache")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    target = float(RSS_TARGET_MB)
    return [
        result(
            f"corpus_prep.{label}.speed",
            megabytes / prep["seconds"],
            "MB/s",
            "encode_array in memory",
            prep["baseline_mb_s"],
        ),
        result(f"corpus_prep.{label}.peak_rss", prep_rss, "MB", "target for 2 GB of text", target),
        result(f"corpus_prep.{label}.imports_rss", imports_rss, "MB", "(python + torch + lstmtext imported)"),
        result(
            f"corpus_prep.{label}.train_from_cache_rss",
            train_rss,
            "MB",
            "target for 2 GB of text",
            target,
        ),
        result(f"corpus_prep.{label}.train_from_cache_seconds", train_seconds, "s"),
    ]
