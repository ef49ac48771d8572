"""Sentiment quality: the data of the embedded model's recipe, its evaluation, and MR cross-validation.

    python -m benchmarks.sentiment_quality prepare --out runs/sentiment-data
    python -m benchmarks.sentiment_quality evaluate --model lstmtext/pretrained/sentiment
    python -m benchmarks.sentiment_quality mr-cv --minutes 20 --out runs/mr-cv [-- TRAIN OPTIONS]

`prepare` writes the training data of `make pretrained-sentiment`: every labelled example at
hand (SST-2 train, IMDb train, MR) in one TSV, less what would leak into a test: SST-2's
sentences are taken from MR's snippets (about 80 % of SST-2 test is in MR, most verbatim,
the rest as part of a longer snippet), so an MR row sharing any run of six words with an
SST-2 dev or test sentence is left out. A validation file (SST-2 dev and 1,000 IMDb training
reviews held out of train.tsv) picks the best checkpoint for short and long texts alike;
lm.txt holds the IMDb training reviews unlabelled, one a line, for pretraining a language model
(no SST-2 or MR text, so that MR's cross-validation can start from it), and lm-val.txt the
validation texts, to follow that LM's validation loss.

`evaluate` measures a classifier on SST-2 test, IMDb test and the hand-written cross-domain
reviews of corpora/samples/ (products, restaurants, apps), and prints a Markdown table.

`mr-cv` is MR's 10-fold cross-validation of a training recipe: for each fold it trains
`lstmtext train --task classify` on the other nine folds (their last tenth validates) with
the options after `--` and an equal share of the time budget, then scores the held-out fold.
MR's labels are its only labels here: SST-2 train would leak its test folds.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmarks import cpu_model

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
CROSS_DOMAIN = REPO / "corpora" / "samples" / "crossdomain_reviews.tsv"
SHINGLE = 6  # words in a run shared with a held-out sentence that marks an MR row as a copy
VAL_IMDB = 1000

# The MR recipe of `mr-cv` when no options follow `--`: MR alone is 10,662 snippets of about
# 20 words, small enough for about ten epochs a fold in two minutes on two cores.
MR_RECIPE = [
    "--level", "bpe", "--vocab-size", "6000", "--embed", "128", "--hidden", "256", "--layers", "1",
    "--dropout", "0.4", "--embed-dropout", "0.1", "--batch-size", "32", "--optimizer", "adamw",
    "--lr", "3e-3", "--weight-decay", "0.01", "--schedule", "cosine", "--warmup", "50", "--max-tokens", "128",
    "--eval-every", "100", "--patience", "0",
]  # fmt: skip


def read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, text = line.split("\t", 1)
        rows.append((label, text))
    return rows


def write_tsv(path: Path, rows: Iterable[tuple[str, str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{label}\t{text}\n" for label, text in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def words(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric words, with SST's PTB escapes undone, so both sets compare alike."""
    text = text.lower().replace("-lrb-", "(").replace("-rrb-", ")").replace("\\/", "/")
    return tuple(re.findall(r"[a-z0-9]+", text))


def grams(tokens: tuple[str, ...], n: int) -> Iterable[tuple[str, ...]]:
    return (tokens[i : i + n] for i in range(len(tokens) - n + 1))


def leaks(rows: Sequence[tuple[str, str]], held_out: Iterable[str]) -> list[bool]:
    """For each row: does it share a run of SHINGLE words with a held-out text, hold a whole
    held-out text of three words or more, or, when it is short itself, sit inside one? (A
    held-out text of a word or two, "brilliant", only matches itself: a run that short is no copy.)"""
    long_runs: set[tuple[str, ...]] = set()
    short_texts: set[tuple[str, ...]] = set()
    inner_runs: set[tuple[str, ...]] = set()  # every shorter run of a held-out text
    for text in held_out:
        tokens = words(text)
        long_runs.update(grams(tokens, SHINGLE))
        if 3 <= len(tokens) < SHINGLE:
            short_texts.add(tokens)
        for n in range(1, SHINGLE):
            inner_runs.update(grams(tokens, n))
    flags = []
    for _, text in rows:
        tokens = words(text)
        if len(tokens) >= SHINGLE:
            hit = any(g in long_runs for g in grams(tokens, SHINGLE))
        else:
            hit = tokens in inner_runs
        flags.append(hit or any(g in short_texts for n in range(3, SHINGLE) for g in grams(tokens, n)))
    return flags


def prepare(corpora: Path, out: Path, val_imdb: int = VAL_IMDB, seed: int = 0) -> dict[str, int]:
    sst_train = read_tsv(corpora / "sst2" / "train.tsv")
    sst_dev = read_tsv(corpora / "sst2" / "dev.tsv")
    sst_test = read_tsv(corpora / "sst2" / "test.tsv")
    imdb = read_tsv(corpora / "imdb" / "train.tsv")
    mr = read_tsv(corpora / "mr" / "all.tsv")
    flags = leaks(mr, (text for _, text in sst_dev + sst_test))
    mr_kept = [row for row, leaked in zip(mr, flags, strict=True) if not leaked]
    rng = random.Random(seed)
    held: set[int] = set()
    for label in ("negative", "positive"):
        rows = [i for i, (lab, _) in enumerate(imdb) if lab == label]
        held.update(rng.sample(rows, val_imdb // 2))
    imdb_train = [row for i, row in enumerate(imdb) if i not in held]
    imdb_val = [row for i, row in enumerate(imdb) if i in held]
    counts = {
        "sst2_train": len(sst_train),
        "imdb_train": len(imdb_train),
        "mr_kept": len(mr_kept),
        "mr_left_out": len(mr) - len(mr_kept),
        "val_sst2_dev": len(sst_dev),
        "val_imdb": len(imdb_val),
    }
    counts["train"] = write_tsv(out / "train.tsv", sst_train + imdb_train + mr_kept)
    counts["val"] = write_tsv(out / "val.tsv", sst_dev + imdb_val)
    # The IMDb training reviews without labels, one a line: the corpus of a ULMFiT-style LM.
    # No SST-2 or MR text: SST-2's sentences come from MR's snippets, so an LM that read either
    # would have read the texts of MR's cross-validation test folds.
    lm_text = "".join(text + "\n" for _, text in imdb_train)
    (out / "lm.txt").write_text(lm_text, encoding="utf-8")
    (out / "lm-val.txt").write_text("".join(text + "\n" for _, text in sst_dev + imdb_val), encoding="utf-8")
    (out / "counts.json").write_text(json.dumps(counts, indent=1) + "\n", encoding="utf-8")
    return counts


def evaluate(models: list[Path], corpora: Path, precision: str) -> list[dict[str, object]]:
    from lstmtext.classify import evaluate_classifier

    sets = [
        ("SST-2 test", corpora / "sst2" / "test.tsv"),
        ("IMDb test", corpora / "imdb" / "test.tsv"),
        ("cross-domain (products, restaurants, apps)", CROSS_DOMAIN),
    ]
    rows = []
    for name, path in sets:
        if not path.exists():
            print(f"skipped {name}: {path} is absent", file=sys.stderr)
            continue
        started = time.perf_counter()
        metrics = evaluate_classifier(models, [path], precision=precision)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "set": name,
                "file": str(path),
                "count": metrics.count,
                "accuracy": metrics.accuracy,
                "macro_f1": metrics.macro_f1,
                "confusion": [list(r) for r in metrics.confusion],
                "seconds": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def folds(rows: Sequence[tuple[str, str]], k: int, seed: int) -> list[int]:
    """Stratified fold number of each row: each class is shuffled, then dealt round the folds."""
    rng = random.Random(seed)
    fold = [0] * len(rows)
    for label in sorted({lab for lab, _ in rows}):
        members = [i for i, (lab, _) in enumerate(rows) if lab == label]
        rng.shuffle(members)
        for position, i in enumerate(members):
            fold[i] = position % k
    return fold


def fold_accuracy(accuracies: list[float]) -> dict[str, object]:
    """The cross-validated figure: mean and standard deviation of the folds' accuracies."""
    return {
        "mean_accuracy": statistics.fmean(accuracies),
        "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        "cpu": cpu_model(),
    }


def mr_cv(
    corpora: Path, out: Path, minutes: float, train_args: list[str], k: int, only: list[int] | None, seed: int
) -> dict[str, object]:
    from lstmtext.classify import evaluate_classifier

    rows = read_tsv(corpora / "mr" / "all.tsv")
    fold_of = folds(rows, k, seed)
    chosen = only if only else list(range(k))
    per_fold_minutes = minutes / len(chosen)
    accuracies: list[float] = []
    for fold in chosen:
        train = [row for row, f in zip(rows, fold_of, strict=True) if f != fold]
        test = [row for row, f in zip(rows, fold_of, strict=True) if f == fold]
        random.Random(seed + fold).shuffle(train)
        cut = len(train) // 10  # the validation tenth picks the best checkpoint
        write_tsv(out / f"fold{fold}" / "train.tsv", train[cut:])
        write_tsv(out / f"fold{fold}" / "val.tsv", train[:cut])
        write_tsv(out / f"fold{fold}" / "test.tsv", test)
        run = out / f"fold{fold}" / "run"
        command = [
            sys.executable, "-m", "lstmtext", "train", "--task", "classify",
            str(out / f"fold{fold}" / "train.tsv"), "--val", str(out / f"fold{fold}" / "val.tsv"),
            "--out", str(run), "--max-time", f"{per_fold_minutes:.3f}", "--random-state", str(seed + fold),
            *train_args,
        ]  # fmt: skip
        print(" ".join(command), file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        metrics = evaluate_classifier(run, [out / f"fold{fold}" / "test.tsv"])
        accuracies.append(metrics.accuracy)
        record = {"fold": fold, "accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1}
        record |= {"count": metrics.count, "minutes": (time.perf_counter() - started) / 60}
        print(json.dumps(record), flush=True)
    summary: dict[str, object] = {
        "folds": chosen,
        **fold_accuracy(accuracies),
        "minutes_per_fold": per_fold_minutes,
        "train_args": train_args,
    }
    print(json.dumps(summary), flush=True)
    return summary


def mr_cv_ensemble(runs: list[Path], k: int) -> dict[str, object]:
    """Score the fold classifiers of several finished `mr-cv` runs as one ensemble per fold.

    The runs must have dealt the same folds (the same --seed): each fold's test file is
    compared before it is scored.
    """
    from lstmtext.classify import evaluate_classifier

    accuracies: list[float] = []
    for fold in range(k):
        tests = [run / f"fold{fold}" / "test.tsv" for run in runs]
        first = tests[0].read_bytes()
        if any(t.read_bytes() != first for t in tests[1:]):
            raise SystemExit(f"fold {fold}: the runs' test folds differ (dealt with another --seed?)")
        metrics = evaluate_classifier([run / f"fold{fold}" / "run" for run in runs], [tests[0]])
        accuracies.append(metrics.accuracy)
        print(json.dumps({"fold": fold, "accuracy": metrics.accuracy, "count": metrics.count}), flush=True)
    summary: dict[str, object] = {"runs": [str(run) for run in runs], **fold_accuracy(accuracies)}
    print(json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sentiment_quality", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="folder with sst2/, imdb/, mr/")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="write train.tsv and val.tsv of the embedded model")
    prep.add_argument("--out", type=Path, default=Path("runs/sentiment-data"))
    prep.add_argument("--val-imdb", type=int, default=VAL_IMDB, help="IMDb training reviews held out")
    ev = commands.add_parser("evaluate", help="SST-2 test, IMDb test and cross-domain accuracy")
    ev.add_argument(
        "--model",
        type=Path,
        action="append",
        help="classifier checkpoint (default: the embedded model); repeated: their ensemble",
    )
    ev.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    cv = commands.add_parser("mr-cv", help="MR k-fold cross-validation of a recipe (options after --)")
    cv.add_argument("--out", type=Path, default=Path("runs/mr-cv"))
    cv.add_argument("--minutes", type=float, default=20.0, help="training time of all folds together")
    cv.add_argument("--folds", type=int, default=10)
    cv.add_argument("--only", type=int, action="append", help="run only this fold (repeatable)")
    cv.add_argument("--seed", type=int, default=0)
    cv_ensemble = commands.add_parser(
        "mr-cv-ensemble", help="score finished mr-cv runs together, one ensemble per fold"
    )
    cv_ensemble.add_argument("runs", type=Path, nargs="+", help="--out folders of mr-cv runs")
    cv_ensemble.add_argument("--folds", type=int, default=10)
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_model()}", file=sys.stderr)
    if args.command == "prepare":
        counts = prepare(args.corpora, args.out, args.val_imdb)
        print(json.dumps(counts), flush=True)
    elif args.command == "evaluate":
        models = args.model or [REPO / "lstmtext" / "pretrained" / "sentiment"]
        rows = evaluate(models, args.corpora, args.precision)
        print("| set | texts | accuracy | macro-F1 | seconds |\n|---|---:|---:|---:|---:|", file=sys.stderr)
        for row in rows:
            print(
                f"| {row['set']} | {row['count']:,} | {row['accuracy']:.2%} | {row['macro_f1']:.4f} "
                f"| {row['seconds']:.0f} |",
                file=sys.stderr,
            )
    elif args.command == "mr-cv-ensemble":
        mr_cv_ensemble(args.runs, args.folds)
    else:
        mr_cv(args.corpora, args.out, args.minutes, train_args or MR_RECIPE, args.folds, args.only, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
