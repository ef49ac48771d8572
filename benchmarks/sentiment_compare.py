"""A sentiment classifier side by side with TF-IDF + logistic regression and VADER, on every public test set.

    python -m benchmarks.sentiment_compare [--model DIR] [--tweets-model DIR] [--data runs/sentiment-data]
    python -m benchmarks.sentiment_compare amazon-transfer --out runs/amazon-transfer [-- TRAIN OPTIONS]

`evaluate` (the default) scores, in one run, the classifier (default: the embedded model),
a TF-IDF + logistic regression model trained on the same labelled rows (`train.tsv` of
`python -m recipes.sentiment_data`, each row once; C picked on its `val.tsv`) and VADER
on SST-2 test, IMDb test, each Amazon domain's test file, the positive and negative rows of
the tweets' test file (SemEval-2017) and corpora/samples/crossdomain_reviews.tsv. With
`--tweets-model`, also the three-class SemEval-2017 test: that classifier, TF-IDF trained
on `tweets-train.tsv` and VADER with a neutral band, by recall averaged over the classes
(the task's measure) and accuracy.

`amazon-transfer` is the domain-transfer check: for each Amazon domain, a classifier is
trained on the mixture without that domain's rows (`lstmtext train-classifier` with
the options after `--`, e.g. `--from runs/review-lm ...`) and scored on the domain's test
file beside TF-IDF + logistic regression trained on the same rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import cpu_model, split_at_dashes
from benchmarks.sentiment_baselines import TfidfBaseline, scores, vader_predict
from recipes.sentiment_data import AMAZON_DOMAINS, CORPORA, read_tsv, write_tsv

REPO = Path(__file__).resolve().parents[1]
CROSS_DOMAIN = REPO / "corpora" / "samples" / "crossdomain_reviews.tsv"
EMBEDDED = REPO / "lstmtext" / "pretrained" / "sentiment"
Row = tuple[str, str]


def public_test_sets(corpora: Path) -> list[tuple[str, list[Row]]]:
    sets = [
        ("SST-2 test", read_tsv(corpora / "sst2" / "test.tsv")),
        ("IMDb test", read_tsv(corpora / "imdb" / "test.tsv")),
    ]
    sets += [(f"Amazon {d} test", read_tsv(corpora / "amazon" / f"{d}.test.tsv")) for d in AMAZON_DOMAINS]
    polar = [row for row in read_tsv(corpora / "tweets" / "test.tsv") if row[0] != "neutral"]
    sets.append(("tweets test (SemEval-2017), positive/negative rows", polar))
    sets.append(("cross-domain sample (corpora/samples)", read_tsv(CROSS_DOMAIN)))
    return sets


def classifier_predict(models: Sequence[Path], texts: Sequence[str], precision: str = "auto") -> list[str]:
    from lstmtext.classifier.predict import load_predictor

    predictor = load_predictor(list(models), precision=precision)
    probabilities = predictor.probabilities(list(texts))
    return [predictor.labels[i] for i in probabilities.argmax(axis=1)]


def compare(
    name: str, rows: Sequence[Row], models: Sequence[Path], tfidf: TfidfBaseline, precision: str
) -> dict[str, object]:
    gold = [label for label, _ in rows]
    texts = [text for _, text in rows]
    started = time.perf_counter()
    lstm = classifier_predict(models, texts, precision)
    seconds = time.perf_counter() - started
    vader_labels = tuple(sorted(set(gold) | {"negative", "positive"}))
    record = {
        "set": name,
        "texts": len(rows),
        "lstmtext": scores(gold, lstm),
        "tfidf": scores(gold, tfidf.predict(texts)),
        "vader": scores(gold, vader_predict(texts, vader_labels)),
        "lstmtext_seconds": seconds,
    }
    print(json.dumps(record), flush=True)
    return record


def evaluate(
    models: Sequence[Path], tweets_model: Path | None, data: Path, corpora: Path, precision: str
) -> list[dict[str, object]]:
    started = time.perf_counter()
    tfidf = TfidfBaseline.fit(read_tsv(data / "train.tsv"), read_tsv(data / "val.tsv"))
    print(f"TF-IDF + LR fitted in {time.perf_counter() - started:.0f} s (C={tfidf.C})", file=sys.stderr)
    records = [compare(name, rows, models, tfidf, precision) for name, rows in public_test_sets(corpora)]
    if tweets_model is not None:
        tfidf3 = TfidfBaseline.fit(read_tsv(data / "tweets-train.tsv"), read_tsv(data / "tweets-val.tsv"))
        test = read_tsv(corpora / "tweets" / "test.tsv")
        records.append(
            compare("tweets test (SemEval-2017), three classes", test, [tweets_model], tfidf3, precision)
        )
    return records


def markdown(records: Sequence[dict[str, object]]) -> str:
    lines = [
        "| test set | texts | lstmtext | TF-IDF + LR | VADER |",
        "|---|---:|---:|---:|---:|",
    ]
    for record in records:
        three = "three classes" in str(record["set"])
        cells = []
        for system in ("lstmtext", "tfidf", "vader"):
            s = record[system]
            assert isinstance(s, dict)
            cells.append(
                f"AvgRec {s['avg_recall']:.3f}, acc. {s['accuracy']:.2%}" if three else f"{s['accuracy']:.2%}"
            )
        lines.append(f"| {record['set']} | {record['texts']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def amazon_transfer(
    data: Path, corpora: Path, out: Path, minutes: float, train_args: list[str]
) -> list[dict[str, object]]:
    """Leave one Amazon domain out of training, score its test file; TF-IDF on the same rows beside."""
    train = read_tsv(data / "train.tsv")
    val = read_tsv(data / "val.tsv")
    records = []
    for domain in AMAZON_DOMAINS:
        domain_texts = {text for _, text in read_tsv(corpora / "amazon" / f"{domain}.train.tsv")}
        kept = [row for row in train if row[1] not in domain_texts]
        kept_val = [row for row in val if row[1] not in domain_texts]
        folder = out / f"without-{domain}"
        write_tsv(folder / "train.tsv", kept)
        write_tsv(folder / "val.tsv", kept_val)
        run = folder / "run"
        command = [
            sys.executable, "-m", "lstmtext", "train-classifier", str(folder / "train.tsv"),
            "--val", str(folder / "val.tsv"), "--out", str(run), "--overwrite",
            "--max-time", f"{minutes:.3f}", *train_args,
        ]  # fmt: skip
        print(" ".join(command), file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True)
        test = read_tsv(corpora / "amazon" / f"{domain}.test.tsv")
        record = compare(
            f"Amazon {domain} test, trained without {domain}",
            test,
            [run],
            TfidfBaseline.fit(kept, kept_val),
            "auto",
        )
        record["minutes"] = (time.perf_counter() - started) / 60
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    argv, train_args = split_at_dashes(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sentiment_compare", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("command", nargs="?", default="evaluate", choices=("evaluate", "amazon-transfer"))
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument(
        "--data", type=Path, default=Path("runs/sentiment-data"), help="sentiment_data's output"
    )
    parser.add_argument(
        "--model", type=Path, action="append", help="classifier (default: the embedded model)"
    )
    parser.add_argument("--tweets-model", type=Path, help="a negative/neutral/positive classifier")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--out", type=Path, default=Path("runs/amazon-transfer"))
    parser.add_argument("--minutes", type=float, default=5.0, help="amazon-transfer: training time a domain")
    args = parser.parse_args(argv)
    if not (args.data / "train.tsv").exists():
        from recipes.sentiment_data import prepare

        prepare(args.corpora, args.data)
    print(f"CPU: {cpu_model()}", file=sys.stderr)
    if args.command == "evaluate":
        records = evaluate(
            args.model or [EMBEDDED], args.tweets_model, args.data, args.corpora, args.precision
        )
    else:
        records = amazon_transfer(args.data, args.corpora, args.out, args.minutes, train_args)
    print(markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
