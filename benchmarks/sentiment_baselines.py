"""The baselines a sentiment classifier must beat: TF-IDF + logistic regression, and VADER.

- `TfidfBaseline`: word 1-2-grams with sublinear term frequency and a logistic regression
  (scikit-learn), its regularisation C picked on a validation file. Trained on the same
  labelled rows as the LSTM classifier it is compared with (each row once).
- `vader_predict`: VADER (Hutto & Gilbert 2014, `vaderSentiment`), a rule-based lexicon that
  needs no training: compound score >= 0 is positive; with a neutral class, |compound| < 0.05
  is neutral (the thresholds of VADER's README).

Both are optional dependencies of the benchmarks (`pip install -e '.[bench]'`), never of
the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

C_GRID = (0.5, 2.0, 8.0, 32.0)
NEUTRAL_BAND = 0.05


@dataclass
class TfidfBaseline:
    """TF-IDF of word 1-2-grams into a logistic regression, C chosen on validation accuracy."""

    vectoriser: object
    model: object
    labels: tuple[str, ...]
    C: float

    @classmethod
    def fit(
        cls,
        train: Sequence[tuple[str, str]],
        val: Sequence[tuple[str, str]],
        c_grid: Sequence[float] = C_GRID,
        min_df: int = 2,
        seed: int = 0,
    ) -> TfidfBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        unique = list(dict.fromkeys(train))  # a row repeated by a mixture counts once
        labels = tuple(sorted({label for label, _ in unique}))
        vectoriser = TfidfVectorizer(
            ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, max_features=500_000
        )
        features = vectoriser.fit_transform([text for _, text in unique])
        targets = np.asarray([labels.index(label) for label, _ in unique])
        val_features = vectoriser.transform([text for _, text in val])
        val_targets = np.asarray([labels.index(label) for label, _ in val])
        best: tuple[float, float, object] | None = None
        for c in c_grid:
            model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
            model.fit(features, targets)
            accuracy = float(np.mean(model.predict(val_features) == val_targets))
            if best is None or accuracy > best[0]:
                best = (accuracy, c, model)
        assert best is not None, "an empty C grid"
        return cls(vectoriser, best[2], labels, best[1])

    def predict(self, texts: Sequence[str]) -> list[str]:
        predicted = self.model.predict(self.vectoriser.transform(list(texts)))  # type: ignore[attr-defined]
        return [self.labels[i] for i in predicted]


def vader_predict(texts: Sequence[str], labels: Sequence[str]) -> list[str]:
    """VADER's verdict on each text, among `labels` (negative/positive, and neutral if it is one)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    three = "neutral" in labels
    verdicts = []
    for text in texts:
        compound = analyser.polarity_scores(text)["compound"]
        if three and abs(compound) < NEUTRAL_BAND:
            verdicts.append("neutral")
        else:
            verdicts.append("positive" if compound >= 0 else "negative")
    return verdicts


def scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy and recall averaged over the gold classes (SemEval-2017's AvgRec)."""
    gold_array, predicted_array = np.asarray(gold), np.asarray(predicted)
    recalls = [float(np.mean(predicted_array[gold_array == c] == c)) for c in sorted(set(gold))]
    return {"accuracy": float(np.mean(gold_array == predicted_array)), "avg_recall": float(np.mean(recalls))}
