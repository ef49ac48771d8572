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
