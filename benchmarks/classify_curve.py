"""A learning curve for classification from few labels: `train-classifier --from english`
against the same from scratch and TF-IDF + logistic regression, on the same rows.

    python -m benchmarks.classify_curve [--sizes 100 300 1000 1600] [--minutes 3] [--json]

The rows are the first N of a seeded shuffle of ../shared/corpora/amazon/kitchen.train.tsv
(1,600 rows, both classes); every model is scored on kitchen.test.tsv (400). The classifiers
train through the CLI as a user would, for the same wall-clock minutes on two threads, on a
tenth of the rows held out for validation (their default); TF-IDF picks its C on that tenth.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import main_in_scratch, result
from benchmarks.sentiment_baselines import TfidfBaseline, scores

AMAZON = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "amazon"
SIZES = (100, 300, 1000, 1600)


def read_rows(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        rows.append((label, text))
    return rows


def classifier_accuracy(train: Path, test: Path, out: Path, minutes: float, extra: list[str]) -> float:
    args = ["lstmtext", "train-classifier", str(train), "--out", str(out), "--overwrite",
            "--max-time", str(minutes), "--threads", "2", "--random-state", "1", *extra]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True, text=True)
    done = subprocess.run(
        ["lstmtext", "evaluate", "-m", str(out), str(test), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(done.stdout)["accuracy"])


def measure(sizes: list[int], minutes: float, folder: Path) -> list[dict[str, Any]]:
    rows = read_rows(AMAZON / "kitchen.train.tsv")
    random.Random(0).shuffle(rows)
    test = AMAZON / "kitchen.test.tsv"
    test_rows = read_rows(test)
    results = []
    for size in sizes:
        chosen = rows[:size]
        train = folder / f"kitchen-{size}.tsv"
        train.write_text("".join(f"{label}\t{text}\n" for label, text in chosen), encoding="utf-8")
        held = max(1, size // 10)
        tfidf = TfidfBaseline.fit(chosen[held:], chosen[:held], min_df=1)
        tfidf_accuracy = scores([g for g, _ in test_rows], tfidf.predict([t for _, t in test_rows]))[
            "accuracy"
        ]
        scratch = classifier_accuracy(train, test, folder / "scratch", minutes, [])
        english = classifier_accuracy(train, test, folder / "english", minutes, ["--from", "english"])
        print(f"{size} rows: from english {english:.4f}, scratch {scratch:.4f}, TF-IDF {tfidf_accuracy:.4f}",
              file=sys.stderr, flush=True)  # fmt: skip
        results.append(
            result(f"kitchen {size} rows: from english", english, "accuracy", "from scratch", scratch)
        )
        results.append(
            result(f"kitchen {size} rows: from english", english, "accuracy", "TF-IDF + LR", tfidf_accuracy)
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.classify_curve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return main_in_scratch(lambda folder: measure(args.sizes, args.minutes, folder), args.json)


if __name__ == "__main__":
    sys.exit(main())
