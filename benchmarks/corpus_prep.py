"""Corpora larger than memory: token-id cache preparation and training from the memory map.

A generated text file (2 GB; 100 MB with --quick) is written under the system temp dir, never
into the repository, and removed afterwards. Two child processes are measured, each with its
own peak RSS from os.wait4 (ru_maxrss):

1. `cached_ids` on the file, with the tokenizer `lstmtext train` would train on the file's
   first TOKENIZER_SAMPLE_BYTES: MB/s and peak RSS of the preparation.
2. The real `lstmtext train` command on the same file and cache dir (a cache hit, so the ids are
   memory-mapped, not made again): peak RSS of training from the memory map.

The MB/s baseline is the tokenizer's `encode_array` on an in-memory slice of the same text,
timed in the same run: the ratio is what chunked reading and writing the cache cost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import result, synthetic_text
from lstmtext.bigcorpus import TOKENIZER_SAMPLE_BYTES, read_sample
from lstmtext.config import TokenizerConfig
from lstmtext.tokenizer import TextTokenizer

FULL_BYTES = 2 * 1000**3
QUICK_BYTES = 100 * 1000**2
RSS_TARGET_MB = 1536  # for the 2 GB file

_PREPARE = """
import json, sys, time
from pathlib import Path
from lstmtext.corpus import cached_ids
from lstmtext.tokenizer import TextTokenizer
corpus, tokenizer_path, cache_dir, report = sys.argv[1:5]
tokenizer = TextTokenizer.load(Path(tokenizer_path))
start = time.perf_counter()
ids = cached_ids(Path(corpus), tokenizer, Path(cache_dir))
elapsed = time.perf_counter() - start
Path(report).write_text(json.dumps({"seconds": elapsed, "tokens": len(ids), "dtype": str(ids.dtype)}))
"""

_IMPORTS_ONLY = "import lstmtext.corpus, lstmtext.tokenizer, lstmtext.train"


def write_corpus(path: Path, num_bytes: int) -> None:
    """num_bytes of synthetic text: a 4 MB block written over and over (tokenising does not care)."""
    block = (synthetic_text(4 << 20, seed=1) + "\n").encode("ascii")
    with path.open("wb") as file:
        remaining = num_bytes
        while remaining > 0:
            file.write(block[:remaining])
            remaining -= len(block)


def measured(command: list[str]) -> tuple[float, float, str]:
    """Run `command`; (seconds, peak RSS in MB, stderr tail). Raises if it fails."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}): {stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stderr[-2000:]  # ru_maxrss is in KiB on Linux


def run(quick: bool) -> list[dict[str, Any]]:
    num_bytes = QUICK_BYTES if quick else FULL_BYTES
    megabytes = num_bytes / 1e6
    label = f"{num_bytes / 1e9:g}GB" if num_bytes >= 1e9 else f"{megabytes:g}MB"
    tmp = Path(tempfile.mkdtemp(prefix="lstmtext-bench-corpus-"))
    try:
        corpus, cache = tmp / "big.txt", tmp / "cache"
        write_corpus(corpus, num_bytes)
        # The tokenizer `lstmtext train` trains on a big corpus: the same sample, the same config.
        sample = read_sample(corpus, TOKENIZER_SAMPLE_BYTES)
        tokenizer = TextTokenizer.train([sample], TokenizerConfig(level="char"))
        tokenizer.save(tmp / "tokenizer.json")

        # Baseline: encode_array on text already in memory, no files.
        piece = sample[: 32 << 20]
        start = time.perf_counter()
        tokenizer.encode_array(piece)
        bare_mb_s = len(piece.encode("utf-8")) / 1e6 / (time.perf_counter() - start)
        del sample, piece

        _, imports_rss, _ = measured([sys.executable, "-c", _IMPORTS_ONLY])
        report = tmp / "report.json"
        _, prep_rss, _ = measured(
            [sys.executable, "-c", _PREPARE, str(corpus), str(tmp / "tokenizer.json"), str(cache), str(report)]
        )
        prep = json.loads(report.read_text())
        prep_mb_s = megabytes / prep["seconds"]

        train_seconds, train_rss, train_log = measured(
            [
                sys.executable,
                "-m",
                "lstmtext",
                "train",
                str(corpus),
                "--cache-dir",
                str(cache),
                "--out",
                str(tmp / "run"),
                "--max-steps",
                "3",
                "--eval-batches",
                "2",
                "--layers",
                "1",
                "--hidden",
                "64",
                "--embed",
                "16",
                "--device",
                "cpu",
            ]
        )
        if "tokenising" in train_log:
            raise RuntimeError("lstmtext train tokenised the corpus again instead of using the cache")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    target = float(RSS_TARGET_MB)
    return [
        result(f"corpus_prep.{label}.speed", prep_mb_s, "MB/s", "encode_array in memory", bare_mb_s),
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
