"""The sentiment benchmark's baselines (TF-IDF + logistic regression, VADER) and its measure, on tiny data."""

from pathlib import Path

import pytest

from benchmarks.sentiment_baselines import TfidfBaseline, scores, vader_predict

pytest.importorskip("sklearn")
pytest.importorskip("vaderSentiment")

POSITIVE = ["a wonderful , moving film", "great battery and a lovely screen", "i love this kettle , superb"]
NEGATIVE = ["a dull , tedious mess", "terrible battery and an awful screen", "i hate this kettle , broken"]


def test_scores_average_recall_over_gold_classes() -> None:
    gold = ["negative", "negative", "neutral", "positive"]
    predicted = ["negative", "neutral", "neutral", "neutral"]
    result = scores(gold, predicted)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["avg_recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_tfidf_learns_tiny_data_and_counts_a_repeated_row_once() -> None:
    train = [("positive", t) for t in POSITIVE] * 3 + [("negative", t) for t in NEGATIVE]
    val = [("positive", "a lovely , moving kettle"), ("negative", "an awful , broken film")]
    model = TfidfBaseline.fit(train, val, c_grid=(1.0, 100.0), min_df=1)
    assert model.labels == ("negative", "positive") and model.C in (1.0, 100.0)
    assert model.predict(["superb and lovely", "tedious and awful"]) == ["positive", "negative"]
    # the mixture's repeats are dropped: three copies of the positives weigh as one
    once = TfidfBaseline.fit(list(dict.fromkeys(train)), val, c_grid=(1.0, 100.0), min_df=1)
    assert once.C == model.C
    assert once.model.coef_ == pytest.approx(model.model.coef_)  # type: ignore[attr-defined]


def test_vader_two_and_three_classes() -> None:
    texts = ["I love it, wonderful!", "Awful, I hate it.", "The box is blue."]
    assert vader_predict(texts, ("negative", "positive")) == ["positive", "negative", "positive"]
    assert vader_predict(texts, ("negative", "neutral", "positive")) == ["positive", "negative", "neutral"]


def test_compare_table_has_every_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import sentiment_compare

    rows = [("positive", t) for t in POSITIVE] + [("negative", t) for t in NEGATIVE]
    model = TfidfBaseline.fit(rows, rows, c_grid=(10.0,), min_df=1)
    # the LSTM's verdicts stand in for a checkpoint here: the classifier path has its own tests
    monkeypatch.setattr(
        sentiment_compare, "classifier_predict", lambda models, texts, precision: model.predict(texts)
    )
    record = sentiment_compare.compare("tiny", rows, [tmp_path], model, "fp32")
    assert record["lstmtext"] == record["tfidf"] == {"accuracy": 1.0, "avg_recall": 1.0}
    table = sentiment_compare.markdown([record])
    assert "| tiny | 6 | 100.00% | 100.00% |" in table


def test_mr_cv_starts_each_fold_from_a_classifier_and_fits_tfidf_with_its_rows(
    tiny_classifier: Path, tiny_reviews: Path, tmp_path: Path
) -> None:
    import json

    from benchmarks.sentiment_quality import mr_cv
    from recipes.sentiment_data import read_tsv

    corpora = tmp_path / "corpora"
    (corpora / "mr").mkdir(parents=True)
    reviews = read_tsv(tiny_reviews)
    (corpora / "mr" / "all.tsv").write_bytes(tiny_reviews.read_bytes())
    out = tmp_path / "cv"
    quick = ["--from", str(tiny_classifier), "--batch-size", "8", "--max-steps", "4", "--eval-every", "2"]

    summary = mr_cv(corpora, out, 0.5, quick, k=2, only=[1], seed=0, tfidf_extra=tiny_reviews)

    fold = out / "fold1"
    test, train, val = (read_tsv(fold / f"{name}.tsv") for name in ("test", "train", "val"))
    assert len(test) == 40 and sorted(test + train + val) == sorted(reviews)
    assert json.loads((fold / "run" / "config.json").read_text())["classifier"]["start_from"] == str(
        tiny_classifier
    )
    assert summary["folds"] == [1] and 0.0 <= summary["mean_accuracy"] <= 1.0
    # the extra rows hold every test review with its label: TF-IDF given them gets the fold right
    assert summary["tfidf_extra_mean_accuracy"] == 1.0
    assert set(summary) >= {"tfidf_mean_accuracy", "tfidf_extra_mean_accuracy"}
