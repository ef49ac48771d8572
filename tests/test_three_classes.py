"""Three classes (negative / neutral / positive): readers, metrics, and a classifier from a language model."""

import json
import random
from pathlib import Path

import pytest

from lstmtext.classifier.predict import Predictor, classification_metrics
from lstmtext.data.labelled import read_labelled
from tests.conftest import SHARED_CORPORA, write_labelled

WORDS = {
    "positive": ["superb", "lovely", "great", "wonderful"],
    "neutral": ["tuesday", "blue", "box", "station"],
    "negative": ["awful", "dull", "broken", "terrible"],
}
FILLER = ["the", "a", "it", "was", "and", "this", "is", "of"]


def three_class_tsv(path: Path, per_class: int = 30, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(per_class):
            picks = [rng.choice(FILLER) for _ in range(5)] + [rng.choice(words), rng.choice(words)]
            rng.shuffle(picks)
            rows.append((label, f"{' '.join(picks)} ."))
    rng.shuffle(rows)
    return write_labelled(path, rows)


def test_average_recall_by_hand() -> None:
    labels = ("negative", "neutral", "positive")
    gold = [0, 0, 1, 1, 1, 1, 2, 2]
    predicted = [0, 1, 1, 1, 0, 1, 2, 1]
    metrics = classification_metrics(gold, predicted, labels)
    assert metrics.accuracy == pytest.approx(5 / 8)
    assert metrics.average_recall == pytest.approx((1 / 2 + 3 / 4 + 1 / 2) / 3)
    # a class absent from the gold labels does not count in the average
    assert classification_metrics([0, 2], [0, 1], labels).average_recall == pytest.approx(0.5)


def test_reader_keeps_three_classes_in_sorted_order(tmp_path: Path) -> None:
    data = read_labelled([str(three_class_tsv(tmp_path / "three.tsv"))])
    assert data.label_names == ("negative", "neutral", "positive")
    assert data.counts() == {"negative": 30, "neutral": 30, "positive": 30}


@pytest.mark.skipif(not (SHARED_CORPORA / "tweets" / "test.tsv").exists(), reason="needs ../shared/corpora")
def test_the_tweets_catalogue_name_reads_three_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMTEXT_CORPORA", str(SHARED_CORPORA))
    data = read_labelled(["tweets:test"])
    assert data.counts() == {"negative": 3972, "neutral": 5937, "positive": 2375}


def test_three_class_classifier_from_a_language_model_through_the_cli(cli, tmp_path: Path) -> None:
    corpus = tmp_path / "text.txt"
    labelled = three_class_tsv(tmp_path / "three.tsv")
    corpus.write_text(
        "".join(line.split("\t")[1] for line in labelled.read_text().splitlines(keepends=True)) * 3,
        encoding="utf-8",
    )
    small = ["--layers", "1", "--hidden", "16", "--embed", "8", "--random-state", "3"]
    lm = tmp_path / "lm"
    result = cli(["train", str(corpus), "--level", "word", "--out", str(lm), "--seq-len", "8",
                  "--batch-size", "4", "--max-steps", "30", "--eval-every", "30", *small])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "clf"
    result = cli(["train", "--task", "classify", str(labelled), "--from", str(lm), "--out", str(out),
                  "--batch-size", "8", "--max-steps", "150", "--eval-every", "50", "--lr", "0.02",
                  "--val-fraction", "0.2", "--random-state", "3"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "negative, neutral, positive" in result.stderr
    assert (out / "tokenizer.json").read_text() == (lm / "tokenizer.json").read_text()  # the LM's tokenizer
    predictor = Predictor.load(out, precision="fp32")
    assert predictor.labels == ("negative", "neutral", "positive")
    verdicts = [p.label for p in predictor.predict(["it was superb and lovely .", "the blue box of tuesday .",
                                                    "this is awful and dull ."])]  # fmt: skip
    assert verdicts == ["positive", "neutral", "negative"]
    result = cli(["evaluate", "--model", str(out), str(labelled), "--json"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["labels"] == ["negative", "neutral", "positive"] and len(metrics["confusion"]) == 3
    assert metrics["average_recall"] >= 0.8
    result = cli(["evaluate", "--model", str(out), str(labelled)])
    assert "average recall" in result.stdout
