"""Calibration and explanations of a sentiment classifier: the figures of issue 24.

    python -m benchmarks.calibration [--model DIR] [--val FILE ...] [--imdb-sample N] [--json]

1. Temperature scaling: T fitted (from the raw logits, whatever T the checkpoint stores) on
   validation data that is neither test set: by default the recipe's held-out validation
   file runs/sentiment-data/val.tsv when it is there (SST-2 dev, 500 IMDb train reviews,
   Amazon reviews and tweets held out of training; `python -m recipes.sentiment_data`),
   else SST-2 dev + a fixed random 1,000 of IMDb train. Expected calibration error (15
   equal-width bins) on SST-2 test and on a fixed random sample of IMDb test (seed 0),
   before (T = 1) and after (the fitted T), fp32.
2. Deletion check on SST-2 test: per sentence, delete the k tokens with the largest
   contribution to the predicted class (integrated gradients, 32 steps), k = 1..5, and
   re-score; against deleting k tokens drawn at random (seed 0). The faster the predicted
   class's probability falls, the better the explanation ranks what mattered. Also how often
   completeness holds within 5 % (|sum of contributions - change of log-odds| <= 5 % of it),
   there and on the first 100 sentences at 32, 64, 128 and 256 steps.
3. Time of `lstmtext classify --explain` on a review of about 1,000 words (the first of IMDb
   test with 950-1,050 words), a process of its own: its CPU time (user + system) and wall
   time, median of 3 runs.

`run(quick)` gives the rows to `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import cpu_model, result
from lstmtext.classifier.calibrate import read_validation
from lstmtext.classifier.calibration import fit_temperature, reliability, softmax
from lstmtext.classifier.explain import explain
from lstmtext.classifier.predict import Predictor, length_buckets, pad_batch
from lstmtext.data.labelled import read_labelled
from lstmtext.pretrained import PRETRAINED, SENTIMENT

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
RECIPE_VAL = REPO / "runs" / "sentiment-data" / "val.tsv"
K_MAX = 5
STEPS = 32
COMPLETENESS_STEPS = (32, 64, 128, 256)


def validation_sources(given: list[Path] | None) -> tuple[list[Path], int | None, str]:
    """(files, per-file sample cap, description) of the data T is fitted on."""
    if given:
        return given, None, ", ".join(map(str, given))
    if RECIPE_VAL.exists():
        return [RECIPE_VAL], None, f"{RECIPE_VAL.relative_to(REPO)} (the recipe's held-out validation)"
    files = [CORPORA / "sst2" / "dev.tsv", CORPORA / "imdb" / "train.tsv"]
    return files, 1000, "SST-2 dev + 1,000 IMDb train reviews (seed 0)"


def targets_of(labels: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    index = {label: i for i, label in enumerate(names)}
    return np.asarray([index[label] for label in labels], dtype=np.int64)


def calibration_figures(predictor: Predictor, val: list[Path], cap: int | None, imdb_sample: int) -> dict:
    data = read_validation(val, predictor.labels, max_per_file=cap)
    temperature = fit_temperature(predictor.logits(data.texts), targets_of(data.labels, predictor.labels))
    figures: dict = {
        "temperature": temperature,
        "stored_temperature": predictor.temperature,
        "val_count": len(data),
    }
    sets = {
        "SST-2 test": (CORPORA / "sst2" / "test.tsv", None),
        "IMDb test": (CORPORA / "imdb" / "test.tsv", imdb_sample),
    }
    for name, (path, sample) in sets.items():
        test = read_validation([path], predictor.labels, max_per_file=sample)
        logits = predictor.logits(test.texts)
        targets = targets_of(test.labels, predictor.labels)
        figures[name] = {
            "count": len(test),
            "accuracy": float((logits.argmax(axis=1) == targets).mean()),
            "ece_before": reliability(softmax(logits), targets).ece,
            "ece_after": reliability(softmax(logits, temperature), targets).ece,
        }
    return figures


def predicted_probability(predictor: Predictor, rows: list[np.ndarray], classes: np.ndarray) -> np.ndarray:
    """Probability of classes[i] for token-id row i (a row emptied by deletion is one <unk>)."""
    rows = [r if len(r) else np.asarray([predictor.tokenizer.unk_id]) for r in rows]
    out = np.zeros(len(rows))
    with torch.no_grad():
        for batch in length_buckets([len(r) for r in rows], 32768, 256):
            ids, lengths = pad_batch([rows[i] for i in batch], predictor.tokenizer.pad_id)
            probabilities = torch.softmax(
                predictor.model(ids, lengths).float() / predictor.temperature, dim=-1
            )
            out[batch] = probabilities[torch.arange(len(batch)), torch.from_numpy(classes[batch])].numpy()
    return out


def deletion_figures(predictor: Predictor, limit: int | None) -> dict:
    texts = read_labelled([str(CORPORA / "sst2" / "test.tsv")]).texts[:limit]
    rng = random.Random(0)
    originals, classes, top_rows, random_rows = [], [], [], []
    within = 0
    started = time.process_time()
    for text in texts:
        explanation = explain(predictor, text, steps=STEPS)
        moved = explanation.value - explanation.baseline_value
        within += abs(explanation.completeness_gap) <= 0.05 * abs(moved)
        ids = np.asarray([t.token_id for t in explanation.tokens])
        order = np.argsort([-t.score for t in explanation.tokens], kind="stable")
        shuffled = list(range(len(ids)))
        rng.shuffle(shuffled)
        originals.append(ids)
        classes.append(predictor.labels.index(explanation.label))
        for k in range(1, K_MAX + 1):
            top_rows.append(np.delete(ids, order[:k]))
            random_rows.append(np.delete(ids, shuffled[:k]))
    seconds = time.process_time() - started
    classes_array = np.asarray(classes)
    per_k = np.repeat(classes_array, K_MAX)
    base = predicted_probability(predictor, originals, classes_array)
    top = predicted_probability(predictor, top_rows, per_k).reshape(-1, K_MAX)
    rand = predicted_probability(predictor, random_rows, per_k).reshape(-1, K_MAX)
    return {
        "count": len(texts),
        "completeness_within_5pct": within / len(texts),
        "cpu_seconds_per_sentence": seconds / len(texts),
        "probability": float(base.mean()),
        "top": [float(v) for v in top.mean(axis=0)],
        "random": [float(v) for v in rand.mean(axis=0)],
    }


def completeness_by_steps(predictor: Predictor, count: int = 100) -> dict[int, float]:
    """Share of the first `count` SST-2 test sentences whose contributions add up to within
    5 % of the change of log-odds, at each number of steps."""
    texts = read_labelled([str(CORPORA / "sst2" / "test.tsv")]).texts[:count]
    shares = {}
    for steps in COMPLETENESS_STEPS:
        held = 0
        for text in texts:
            explanation = explain(predictor, text, steps=steps)
            held += abs(explanation.completeness_gap) <= 0.05 * abs(
                explanation.value - explanation.baseline_value
            )
        shares[steps] = held / len(texts)
    return shares


def long_review() -> str:
    for text in read_labelled([str(CORPORA / "imdb" / "test.tsv")]).texts:
        if 950 <= len(text.split()) <= 1050:
            return text
    raise SystemExit("no review of about 1,000 words in IMDb test")


def explain_timing(model: Path, runs: int = 3) -> dict:
    text = long_review()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "review.txt"
        path.write_text(text, encoding="utf-8")
        command = ["lstmtext", "classify", "--model", str(model), str(path), "--explain", "--json"]
        cpu, wall = [], []
        for _ in range(runs):
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(process.pid, 0)
            wall.append(time.perf_counter() - started)
            cpu.append(usage.ru_utime + usage.ru_stime)
            if status != 0:
                raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")  # type: ignore[union-attr]
    predictor = Predictor.load(model, device="cpu")  # precision auto, as the command runs
    inside = []
    for _ in range(runs):
        started = time.process_time()
        explanation = explain(predictor, text, steps=STEPS)
        inside.append(time.process_time() - started)
    return {
        "words": len(text.split()),
        "tokens": len(explanation.tokens),
        "precision": predictor.precision,
        "cpu_seconds": statistics.median(cpu),
        "wall_seconds": statistics.median(wall),
        "explain_cpu_seconds": statistics.median(inside),
    }


def measure(model: Path, val: list[Path] | None, imdb_sample: int, deletion_limit: int | None) -> dict:
    predictor = Predictor.load(model, device="cpu", precision="fp32")
    files, cap, described = validation_sources(val)
    figures = {"model": str(model), "cpu": cpu_model(), "threads": torch.get_num_threads(), "val": described}
    figures["calibration"] = calibration_figures(predictor, files, cap, imdb_sample)
    figures["deletion"] = deletion_figures(predictor, deletion_limit)
    figures["completeness_by_steps"] = completeness_by_steps(predictor)
    figures["explain_1000_words"] = explain_timing(model)
    return figures


def rows_of(figures: dict) -> list[dict]:
    calibration = figures["calibration"]
    rows = [result("calibration temperature (fitted on validation)", calibration["temperature"], "T")]
    for name in ("SST-2 test", "IMDb test"):
        c = calibration[name]
        rows.append(
            result(f"ECE {name} ({c['count']}), T fitted", c["ece_after"], "ECE", "T = 1", c["ece_before"])
        )
    deletion = figures["deletion"]
    for k in range(K_MAX):
        rows.append(
            result(
                f"deletion SST-2 test: P(predicted) after removing top {k + 1}",
                deletion["top"][k],
                "probability",
                f"{k + 1} random",
                deletion["random"][k],
            )
        )
    timing = figures["explain_1000_words"]
    rows.append(result(f"classify --explain, {timing['words']} words (CPU time)", timing["cpu_seconds"], "s"))
    return rows


def run(quick: bool) -> list[dict]:
    model = PRETRAINED / SENTIMENT
    return rows_of(measure(model, None, 1000 if quick else 5000, 300 if quick else None))


def report(figures: dict) -> str:
    c, d, t = figures["calibration"], figures["deletion"], figures["explain_1000_words"]
    lines = [
        f"model {figures['model']}; {figures['cpu']}, {figures['threads']} threads",
        f"temperature fitted on {figures['val']} ({c['val_count']} texts): T = {c['temperature']:.3f} "
        f"(stored in the checkpoint: {c['stored_temperature']:.3f})",
        f"| test set | texts | accuracy | ECE, T = 1 | ECE, T = {c['temperature']:.2f} |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("SST-2 test", "IMDb test"):
        s = c[name]
        ece = f"{s['ece_before']:.4f} | {s['ece_after']:.4f}"
        lines.append(f"| {name} | {s['count']:,} | {s['accuracy']:.4f} | {ece} |")
    lines += [
        "",
        f"deletion on SST-2 test ({d['count']} sentences): "
        f"mean P(predicted class), {d['probability']:.3f} before",
        "| tokens removed | 1 | 2 | 3 | 4 | 5 |",
        "|---|---:|---:|---:|---:|---:|",
        "| largest contributions | " + " | ".join(f"{v:.3f}" for v in d["top"]) + " |",
        "| random | " + " | ".join(f"{v:.3f}" for v in d["random"]) + " |",
        f"completeness within 5 % at {STEPS} steps: {d['completeness_within_5pct']:.1%} of sentences; "
        f"{d['cpu_seconds_per_sentence'] * 1000:.0f} ms CPU per sentence",
        "completeness within 5 % on the first 100 sentences: "
        + ", ".join(
            f"{share:.0%} at {steps} steps" for steps, share in figures["completeness_by_steps"].items()
        ),
        "",
        f"lstmtext classify --explain on a {t['words']}-word review ({t['tokens']} tokens): "
        f"{t['cpu_seconds']:.2f} s CPU time, {t['wall_seconds']:.2f} s wall (median of 3 processes); "
        f"the explanation alone {t['explain_cpu_seconds']:.2f} s CPU ({t['precision']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibration", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", type=Path, default=PRETRAINED / SENTIMENT, help="classifier checkpoint")
    parser.add_argument("--val", type=Path, nargs="+", help="labelled validation files to fit T on")
    parser.add_argument(
        "--imdb-sample", type=int, default=5000, help="IMDb test reviews scored (fixed sample)"
    )
    parser.add_argument("--deletion-limit", type=int, help="first N SST-2 test sentences only")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    figures = measure(args.model, args.val, args.imdb_sample, args.deletion_limit)
    print(json.dumps(figures) if args.json else report(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
