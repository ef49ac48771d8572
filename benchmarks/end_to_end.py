"""`lstmtext train` as a user runs it, against a bare PyTorch loop, per training step.

The command's time per step is (a 12-step run) minus (a 2-step run), over 10: start-up,
tokenising, the final evaluation and checkpoint are the same in both runs and cancel out. The
model is benchmarks.training's 2 x 512 char LSTM (embedding 128, batch 64 x 100) with
`--dropout 0`; the bare loop (benchmarks.training.BareLoop) has no dropout either, and runs
in this process between the command's runs, so both see the same machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import result, seconds_per_step
from benchmarks.training import (
    BATCH_SIZE,
    EMBEDDING,
    HIDDEN,
    LAYERS,
    SEQ_LEN,
    BareLoop,
    bf16_lstm_runs,
    corpus_ids,
)

LONG, SHORT = 12, 2


def command(corpus: Path, out: Path, steps: int, precision: str) -> list[str]:
    return [
        sys.executable, "-m", "lstmtext", "train", str(corpus),
        "--level", "char", "--embed", str(EMBEDDING), "--hidden", str(HIDDEN), "--layers", str(LAYERS),
        "--dropout", "0", "--batch-size", str(BATCH_SIZE), "--seq-len", str(SEQ_LEN),
        "--precision", precision, "--max-steps", str(steps), "--threads", str(torch.get_num_threads()),
        "--out", str(out), "--overwrite",
    ]  # fmt: skip


def timed_run(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(arguments, check=True, capture_output=True)
    return time.perf_counter() - started


def run(quick: bool) -> list[dict[str, Any]]:
    rounds = 2 if quick else 4
    tokenizer, ids = corpus_ids()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstmtext-e2e-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(tokenizer.decode(ids.tolist()), encoding="utf-8")
        for precision in ("fp32", "bf16") if bf16_lstm_runs() else ("fp32",):
            bare = BareLoop(tokenizer.vocab_size, ids, precision, dropout=0.0)
            bare.segment(2)  # warm-up: oneDNN primitives
            ratios, command_steps, bare_steps = [], [], []
            for _ in range(rounds):
                short = timed_run(command(corpus, Path(tmp) / "short", SHORT, precision))
                bare_step = seconds_per_step(bare.segment(LONG - SHORT + 1))
                long = timed_run(command(corpus, Path(tmp) / "long", LONG, precision))
                per_step = (long - short) / (LONG - SHORT)
                command_steps.append(per_step)
                bare_steps.append(bare_step)
                ratios.append(bare_step / per_step)
            tokens = BATCH_SIZE * SEQ_LEN
            rows.append(
                result(
                    f"end_to_end.{precision}",
                    tokens / statistics.median(command_steps),
                    "tokens/s",
                    f"bare PyTorch {precision} loop, no dropout",
                    tokens / statistics.median(bare_steps),
                    statistics.median(ratios),
                )
            )
    return rows
