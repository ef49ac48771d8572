"""Soak: a training stopped by SIGTERM again and again, resumed each time, ends exactly where an
uninterrupted run with the same seed and step count ends: the same weights, the same metric history.

Not in the default suite. `make soak` runs it; LSTMTEXT_SOAK_MINUTES (default 30) sets the
length of the uninterrupted run (a little under half of it); the interrupted one takes as long
plus a start-up per cycle. LSTMTEXT_SOAK_SEED picks the moments of the signals.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.soak

MINUTES = float(os.environ.get("LSTMTEXT_SOAK_MINUTES", "30"))
SEED = int(os.environ.get("LSTMTEXT_SOAK_SEED", "0"))
EVAL_EVERY = 50

# Small, but with everything a resume must restore: dropout (RNG), plateau decay, carried state,
# best-model tracking, step checkpoints.
TRAIN_ARGS = [
    "--layers", "2", "--hidden", "64", "--embed", "32", "--seq-len", "64", "--batch-size", "8",
    "--dropout", "0.1", "--lr", "3e-3", "--eval-every", str(EVAL_EVERY), "--eval-batches", "4",
    "--patience", "0", "--keep-last", "2", "--random-state", "5", "--threads", "1",
]  # fmt: skip


def write_corpus(path: Path, size: int = 400_000) -> None:
    """Sentences of a made-up language with some structure to learn, the same for every run."""
    rng = random.Random(1)
    syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vu", "ne", "pi", "dor", "el", "qua"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    lines, length = [], 0
    while length < size:
        sentence = " ".join(rng.choice(words[: rng.randint(20, 400)]) for _ in range(rng.randint(4, 14)))
        line = sentence.capitalize() + rng.choice([".", ".", "!", "?"])
        lines.append(line)
        length += len(line) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Training:
    """`lstmtext train ...` in a subprocess, its stderr read as it comes."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lstmtext", "train", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"},
        )
        self.lines: list[str] = []
        self.evaluated = threading.Event()  # an evaluation line came (or the process ended)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith("step "):
                self.evaluated.set()
        self.evaluated.set()

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(timeout=900)
        self.reader.join()
        stderr = "".join(self.lines)
        assert "Traceback" not in stderr, stderr
        return code, stderr


def history(run: Path) -> list[tuple]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss"), r.get("lr")) for r in records]


def test_sigterm_resume_cycles_end_like_an_uninterrupted_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus)

    # Seconds per step on this machine, to fit the step count to the time asked for.
    calibration = tmp_path / "calibration"
    code, stderr = Training(
        [str(corpus), "--out", str(calibration), *TRAIN_ARGS, "--max-steps", "100"]
    ).finish()
    assert code == 0, stderr
    logged = [json.loads(line) for line in (calibration / "metrics.jsonl").read_text().splitlines()]
    seconds_per_step = logged[-1]["elapsed"] / logged[-1]["step"]
    steps = max(4 * EVAL_EVERY, int(0.45 * MINUTES * 60 / seconds_per_step))
    args = [str(corpus), *TRAIN_ARGS, "--max-steps", str(steps)]

    whole = tmp_path / "whole"
    started = time.monotonic()
    code, stderr = Training([*args, "--out", str(whole)]).finish()
    assert code == 0, stderr
    reference_seconds = time.monotonic() - started

    # A signal saves the step it lands on, so a cycle loses only its start-up. Most signals come
    # at a random moment after the cycle's first evaluation, so each cycle moves on; one in five
    # comes as soon as the lock is taken (the signal handlers are in place by then), during the
    # restore or the first steps; one that lands before the first step ends the run at once,
    # with nothing saved and the last checkpoint as it was.
    rng = random.Random(SEED)
    longest_gap = max(0.5, reference_seconds / 10)
    split = tmp_path / "split"
    stopped_at: list[int] = []
    deadline = time.monotonic() + 6 * reference_seconds + 600
    resume: list[str] = []
    started = time.monotonic()
    while True:
        assert time.monotonic() < deadline, f"no end after {len(stopped_at)} interruptions"
        # Before a first checkpoint, --overwrite: a signal between the first files and the first
        # step leaves a run with nothing to resume.
        training = Training([*args, "--out", str(split), *(resume or ["--overwrite"])])
        if rng.random() < 0.2:
            while not (split / ".lock").exists() and training.process.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            training.evaluated.wait(timeout=900)
            time.sleep(rng.uniform(0.0, longest_gap))
        if training.process.poll() is None:
            training.process.send_signal(signal.SIGTERM)
        code, stderr = training.finish()
        if code == 0:
            break
        assert code == 128 + signal.SIGTERM, stderr
        if stderr.splitlines()[-1] == "lstmtext: interrupted":  # before the first step: nothing to save
            continue
        assert stderr.splitlines()[-1].startswith("lstmtext: error: interrupted at step "), stderr
        state = json.loads((split / "checkpoints" / "last" / "trainer_state.json").read_text())
        stopped_at.append(state["step"])
        resume = ["--resume"]

    print(
        f"\nsoak: {steps} steps at {seconds_per_step * 1000:.1f} ms/step; uninterrupted run "
        f"{reference_seconds / 60:.1f} min; interrupted run {(time.monotonic() - started) / 60:.1f} min "
        f"with {len(stopped_at)} SIGTERM/resume cycles, stopped at steps {stopped_at}"
    )
    assert stopped_at, "no signal landed before the run finished: raise LSTMTEXT_SOAK_MINUTES"
    for name in ("checkpoints/last/model.safetensors", "checkpoints/last/optimizer.safetensors",
                 "model.safetensors"):  # fmt: skip
        a, b = load_file(whole / name), load_file(split / name)
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs"
    assert json.loads((whole / "best.json").read_text()) == json.loads((split / "best.json").read_text())
    assert history(whole) == history(split)
