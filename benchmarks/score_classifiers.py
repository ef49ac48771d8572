"""Classifiers alone (no baselines) on the public sentiment test sets, as JSON.

    python -m benchmarks.score_classifiers MODEL [MODEL ...] [--tweets-model DIR] [--corpora DIR]
        [--skip imdb] [--device cuda] [--out scores.json]

Each MODEL scores every set of `benchmarks.sentiment_compare` (accuracy); `--tweets-model`, a
negative/neutral/positive classifier, scores SemEval-2017's test by recall averaged over the
classes. A quick check of runs made elsewhere (a GPU's teacher, say) before
`benchmarks.sentiment_compare` puts the chosen one beside TF-IDF and VADER.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.sentiment_baselines import scores
from benchmarks.sentiment_compare import public_test_sets
from recipes.sentiment_data import CORPORA, read_tsv


def score(
    model: Path, sets: list[tuple[str, list[tuple[str, str]]]], device: str
) -> dict[str, dict[str, float]]:
    from lstmtext.classifier.predict import Predictor

    predictor = Predictor.load(model, device=device)
    results = {}
    for name, rows in sets:
        started = time.perf_counter()
        probabilities = predictor.probabilities([text for _, text in rows])
        predicted = [predictor.labels[i] for i in probabilities.argmax(axis=1)]
        results[name] = {
            **scores([label for label, _ in rows], predicted),
            "seconds": time.perf_counter() - started,
        }
        print(f"{model}: {name}: {results[name]['accuracy']:.2%}", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.score_classifiers", description=__doc__)
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--tweets-model", type=Path)
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--skip", action="append", default=[], help="leave out sets whose name holds this")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    skipped = [word.lower() for word in args.skip]
    sets = [
        (name, rows)
        for name, rows in public_test_sets(args.corpora)
        if not any(w in name.lower() for w in skipped)
    ]
    report: dict[str, object] = {str(model): score(model, sets, args.device) for model in args.models}
    if args.tweets_model is not None:
        test = read_tsv(args.corpora / "tweets" / "test.tsv")
        report[f"{args.tweets_model} (three classes)"] = score(
            args.tweets_model, [("tweets test (SemEval-2017), three classes", test)], args.device
        )
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
