"""MR's 10-fold cross-validation of a classifier recipe.

    python -m benchmarks.sentiment_quality mr-cv --minutes 20 --out DIR [--tfidf-extra TSV] [-- OPTIONS]
    python -m benchmarks.sentiment_quality mr-cv-ensemble runs/mr-cv-a runs/mr-cv-b

`mr-cv`: for each fold it trains `lstmtext train-classifier` on the other nine folds
(their last tenth validates) with the options after `--` and an equal share of the time
budget, then scores the held-out fold, beside TF-IDF + logistic regression fitted on the same
rows (C picked on the same validation tenth). Whatever a fold starts from (`--from` a language
model, or a classifier of other labelled reviews) must have read no SST text and no MR row: MR is
SST's source, so SST-2 (sentences or phrases) would leak the test folds; `recipes.sentiment_data`
writes such data (`mr-lm.txt`, `mr-base.tsv`). When the folds start from a classifier, `--tfidf-extra`
names the labelled rows it learned from, and a second TF-IDF model is fitted on them plus each
fold's rows, so both models see the same labels. The side-by-side evaluation of the embedded model is
`benchmarks.sentiment_compare`; its data `recipes.sentiment_data`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import cpu_model, split_at_dashes
from recipes.sentiment_data import read_tsv, write_tsv

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"

# The MR recipe of `mr-cv` when no options follow `--`: MR alone is 10,662 snippets of about
# 20 words, small enough for about ten epochs a fold in two minutes on two cores.
MR_RECIPE = [
    "--level", "bpe", "--vocab-size", "6000", "--embed", "128", "--hidden", "256", "--layers", "1",
    "--dropout", "0.4", "--embed-dropout", "0.1", "--batch-size", "32", "--optimizer", "adamw",
    "--lr", "3e-3", "--weight-decay", "0.01", "--schedule", "cosine", "--warmup", "50", "--max-tokens", "128",
    "--eval-every", "100", "--patience", "0",
]  # fmt: skip


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
    corpora: Path,
    out: Path,
    minutes: float,
    train_args: list[str],
    k: int,
    only: list[int] | None,
    seed: int,
    tfidf_extra: Path | None = None,
) -> dict[str, object]:
    from lstmtext.classifier.predict import evaluate_classifier

    rows = read_tsv(corpora / "mr" / "all.tsv")
    extra = read_tsv(tfidf_extra) if tfidf_extra else []  # TfidfBaseline.fit counts a repeated row once
    fold_of = folds(rows, k, seed)
    chosen = only if only else list(range(k))
    per_fold_minutes = minutes / len(chosen)
    accuracies: list[float] = []
    tfidf_accuracies: list[float] = []
    tfidf_extra_accuracies: list[float] = []
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
            sys.executable, "-m", "lstmtext", "train-classifier",
            str(out / f"fold{fold}" / "train.tsv"), "--val", str(out / f"fold{fold}" / "val.tsv"),
            "--out", str(run), "--overwrite", "--max-time", f"{per_fold_minutes:.3f}",
            "--random-state", str(seed + fold), *train_args,
        ]  # fmt: skip
        print(" ".join(command), file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        metrics = evaluate_classifier(run, [out / f"fold{fold}" / "test.tsv"])
        accuracies.append(metrics.accuracy)
        record = {"fold": fold, "accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1}
        tfidf_accuracies.append(tfidf_accuracy(train[cut:], train[:cut], test))
        record["tfidf_accuracy"] = tfidf_accuracies[-1]
        if extra:
            tfidf_extra_accuracies.append(tfidf_accuracy(extra + train[cut:], train[:cut], test))
            record["tfidf_extra_accuracy"] = tfidf_extra_accuracies[-1]
        record |= {"count": metrics.count, "minutes": (time.perf_counter() - started) / 60}
        print(json.dumps(record), flush=True)
    summary: dict[str, object] = {
        "folds": chosen,
        **fold_accuracy(accuracies),
        "tfidf_mean_accuracy": statistics.fmean(tfidf_accuracies),
        **({"tfidf_extra_mean_accuracy": statistics.fmean(tfidf_extra_accuracies)} if extra else {}),
        "minutes_per_fold": per_fold_minutes,
        "train_args": train_args,
    }
    print(json.dumps(summary), flush=True)
    return summary


def tfidf_accuracy(
    train: Sequence[tuple[str, str]], val: Sequence[tuple[str, str]], test: Sequence[tuple[str, str]]
) -> float:
    from benchmarks.sentiment_baselines import TfidfBaseline

    predicted = TfidfBaseline.fit(train, val).predict([text for _, text in test])
    return sum(p == label for p, (label, _) in zip(predicted, test, strict=True)) / len(test)


def mr_cv_ensemble(runs: list[Path], k: int) -> dict[str, object]:
    """Score the fold classifiers of several finished `mr-cv` runs as one ensemble per fold.

    The runs must have dealt the same folds (the same --seed): each fold's test file is
    compared before it is scored.
    """
    from lstmtext.classifier.predict import evaluate_classifier

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
    argv, train_args = split_at_dashes(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sentiment_quality", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="folder with sst2/, imdb/, mr/")
    commands = parser.add_subparsers(dest="command", required=True)
    cv = commands.add_parser("mr-cv", help="MR k-fold cross-validation of a recipe (options after --)")
    cv.add_argument("--out", type=Path, default=Path("runs/mr-cv"))
    cv.add_argument("--minutes", type=float, default=20.0, help="training time of all folds together")
    cv.add_argument("--folds", type=int, default=10)
    cv.add_argument("--only", type=int, action="append", help="run only this fold (repeatable)")
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument(
        "--tfidf-extra", type=Path, help="labelled rows (TSV) the folds' starting classifier learned from"
    )
    cv_ensemble = commands.add_parser(
        "mr-cv-ensemble", help="score finished mr-cv runs together, one ensemble per fold"
    )
    cv_ensemble.add_argument("runs", type=Path, nargs="+", help="--out folders of mr-cv runs")
    cv_ensemble.add_argument("--folds", type=int, default=10)
    args = parser.parse_args(argv)

    print(f"CPU: {cpu_model()}", file=sys.stderr)
    if args.command == "mr-cv-ensemble":
        mr_cv_ensemble(args.runs, args.folds)
    else:
        mr_cv(
            args.corpora,
            args.out,
            args.minutes,
            train_args or MR_RECIPE,
            args.folds,
            args.only,
            args.seed,
            args.tfidf_extra,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
