"""Batched prediction with a trained classifier, and the metrics to judge it.

predictor = Predictor.load("runs/sentiment")
predictor.predict(["A joy from start to finish.", "Dull."])  # -> [Prediction(label, probability), ...]
metrics = evaluate_classifier("runs/sentiment", ["../shared/corpora/sst2/test.tsv"])
ensemble = Ensemble.load(["runs/sentiment", "runs/sentiment-scratch"])  # mean of their probabilities

Texts are tokenised, sorted by length and cut into batches of about `max_batch_tokens`
padded tokens, so a batch holds texts of similar length (little padding) and a review of
thousands of words runs in a batch of its own instead of padding a whole batch to its size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lstmtext.classifier.calibration import Reliability, reliability
from lstmtext.config import RunConfig
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import DEFAULT_COLUMNS, Columns, read_labelled
from lstmtext.data.text_pieces import PIECE_CHARS
from lstmtext.data.tokenizer import TextTokenizer, encode_long
from lstmtext.device import autocast_context, resolve_precision, select_device
from lstmtext.errors import DataError
from lstmtext.runs import checkpoint as ckpt
from lstmtext.threads import inference_threads, torch_threads

# Texts of more tokens are read this many at a time with the state carried (Classifier.forward_windows).
LONG_TEXT_WINDOW = 4096


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float  # of `label`, the most probable class
    probabilities: dict[str, float]


def encode_texts(
    tokenizer: TextTokenizer, texts: Sequence[str], max_tokens: int | None = None
) -> list[np.ndarray]:
    """Token ids per text; an empty encoding becomes one <unk> so every row has a last token.

    With `max_tokens`, a longer text keeps its first quarter and last three quarters of the
    budget: openings and verdicts carry most of a review's sentiment.
    """
    encoded = []
    for text in texts:
        # A long text piece by piece: one encode() of 20 MB holds gigabytes of token strings and offsets.
        ids = (
            encode_long(tokenizer, text).astype(np.int64)
            if len(text) > PIECE_CHARS
            else np.asarray(tokenizer.encode(text), dtype=np.int64)
        )
        if len(ids) == 0:
            ids = np.asarray([tokenizer.unk_id], dtype=np.int64)
        if max_tokens is not None and len(ids) > max_tokens:
            head = max_tokens // 4
            ids = np.concatenate([ids[:head], ids[len(ids) - (max_tokens - head) :]])
        encoded.append(ids)
    return encoded


def pad_batch(rows: Sequence[np.ndarray], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """rows -> ids (B, T) right-padded with pad_id, lengths (B,)."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.from_numpy(row)
    return ids, lengths


def length_buckets(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> Iterator[list[int]]:
    """Indices in order of length, cut into batches of at most `max_batch_tokens` padded tokens."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batch: list[int] = []
    longest = 0
    for index in order:
        length = lengths[index]
        # Sorted ascending, so the newest row is the longest: padded size = rows * its length.
        if batch and (
            (len(batch) + 1) * max(longest, length) > max_batch_tokens or len(batch) >= max_batch_size
        ):
            yield batch
            batch, longest = [], 0
        batch.append(int(index))
        longest = max(longest, length)
    if batch:
        yield batch


class Predictor:
    """A classifier checkpoint ready to label texts."""

    def __init__(
        self,
        model: Classifier,
        tokenizer: TextTokenizer,
        config: RunConfig,
        *,
        device: str = "auto",
        precision: str = "auto",
        max_batch_tokens: int = 32768,
        max_batch_size: int = 128,
        threads: int | None = None,  # CPU threads; None: chosen per batch (lstmtext.threads)
    ) -> None:
        self.threads = threads
        self.device = select_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.labels = config.labels
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size

    @classmethod
    def load(cls, directory: Path | str, **options: object) -> Predictor:
        checkpoint = ckpt.load_checkpoint(directory, task="classify")
        if len(checkpoint.config.labels) != checkpoint.config.model.num_classes:
            raise DataError(
                f"{directory}: config.json names {len(checkpoint.config.labels)} labels for "
                f"{checkpoint.config.model.num_classes} classes"
            )
        assert isinstance(checkpoint.model, Classifier)
        return cls(checkpoint.model, checkpoint.tokenizer, checkpoint.config, **options)  # type: ignore[arg-type]

    @property
    def temperature(self) -> float:
        """What the logits are divided by before the softmax (config.json; 1.0 if never calibrated)."""
        return self.config.temperature

    @torch.inference_mode()
    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(N, classes) raw logits, before the temperature, rows in the order of `texts`."""
        encoded = encode_texts(self.tokenizer, texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        # Texts longer than a window are read window by window, each alone, in bounded memory.
        short = [i for i, e in enumerate(encoded) if len(e) <= LONG_TEXT_WINDOW]
        for i in sorted(set(range(len(encoded))) - set(short)):
            out[i] = self._run([encoded[i]], windowed=True)[0]
        lengths = [len(encoded[i]) for i in short]
        for batch in length_buckets(lengths, self.max_batch_tokens, self.max_batch_size):
            rows = [short[j] for j in batch]
            out[rows] = self._run([encoded[i] for i in rows])
        return out

    def _run(self, encoded: Sequence[np.ndarray], windowed: bool = False) -> np.ndarray:
        """Logits (B, classes) of a batch of encoded texts, on threads picked for its shape."""
        threads = self.threads
        if threads is None and self.device.type == "cpu":
            threads = inference_threads(len(encoded), self.model.config.hidden_size)
        ids, lengths = pad_batch(encoded, self.tokenizer.pad_id)
        with torch_threads(threads), autocast_context(self.precision, self.device):
            if windowed:
                logits = self.model.forward_windows(ids.to(self.device), LONG_TEXT_WINDOW)
            else:
                logits = self.model(ids.to(self.device), lengths.to(self.device))  # (B, classes)
        return logits.float().cpu().numpy()

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(N, classes) calibrated class probabilities, softmax(logits / T), in the order of `texts`."""
        logits = torch.from_numpy(self.logits(texts))
        return torch.softmax(logits / self.temperature, dim=-1).numpy()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return label_rows(self.probabilities(texts), self.labels)


class Ensemble:
    """Classifiers that vote with the mean of their class probabilities.

    An average of predictions, not of weights (those are lstmtext.training.weight_ema and
    lstmtext.runs.average); lstmtext.lm.ensemble is its counterpart for language models.

    Members may differ in tokenizer, shape and training data (one started from a language
    model, one from scratch, one trained on long texts only); models that err on different
    texts make fewer errors together. They must name the same classes, in any order: the
    ensemble answers in the first member's order.
    """

    def __init__(self, members: Sequence[Predictor]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one classifier")
        self.members = list(members)
        self.labels = tuple(members[0].labels)
        self._columns = []  # per member: its column of each of the ensemble's labels
        for member in self.members:
            if sorted(member.labels) != sorted(self.labels):
                raise DataError(
                    f"the classifiers of an ensemble must name the same classes: "
                    f"{', '.join(self.labels)} against {', '.join(member.labels)}"
                )
            self._columns.append([list(member.labels).index(label) for label in self.labels])

    @classmethod
    def load(cls, directories: Sequence[Path | str], **options: object) -> Ensemble:
        return cls([Predictor.load(directory, **options) for directory in directories])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(N, classes): the members' probabilities averaged, rows in the order of `texts`."""
        total = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for member, columns in zip(self.members, self._columns, strict=True):
            total += member.probabilities(texts)[:, columns]
        return (total / len(self.members)).astype(np.float32)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return label_rows(self.probabilities(texts), self.labels)


def load_predictor(directories: Sequence[Path | str], **options: object) -> Predictor | Ensemble:
    """One checkpoint: its Predictor; several: their Ensemble."""
    if len(directories) == 1:
        return Predictor.load(directories[0], **options)
    return Ensemble.load(directories, **options)


def label_rows(probabilities: np.ndarray, labels: Sequence[str]) -> list[Prediction]:
    """Each row's most probable label, its probability and the whole distribution."""
    predictions = []
    for row in probabilities:
        best = int(row.argmax())
        predictions.append(
            Prediction(
                label=labels[best],
                probability=float(row[best]),
                probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
            )
        )
    return predictions


# ---- metrics


@dataclass(frozen=True)
class ClassificationMetrics:
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    count: int
    reliability: Reliability | None = None  # calibration of the probabilities, when they were known

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """Precision, recall and F1 of each class; None where the data cannot say (the recall and
        F1 of a class absent from the gold labels, the precision of one never predicted either)."""
        return {label: _prf(self.confusion, i) for i, label in enumerate(self.labels)}

    @property
    def absent(self) -> tuple[str, ...]:
        """The classes no gold label names: the macro figures leave them out."""
        return tuple(label for label, row in zip(self.labels, self.confusion, strict=True) if not sum(row))

    @property
    def average_recall(self) -> float:
        """Recall averaged over the classes that occur (SemEval's AvgRec; balanced accuracy)."""
        recalls = [row[i] / sum(row) for i, row in enumerate(self.confusion) if sum(row)]
        return float(np.mean(recalls)) if recalls else math.nan

    def to_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "average_recall": self.average_recall,
            "count": self.count,
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
            "per_class": self.per_class(),
            "absent": list(self.absent),
        }
        if self.reliability is not None:
            result["ece"] = self.reliability.ece
            result["reliability"] = self.reliability.to_dict()["bins"]
        return result


def _prf(confusion: Sequence[Sequence[int]], i: int) -> dict[str, float | None]:
    true_positive = confusion[i][i]
    predicted = sum(row[i] for row in confusion)
    actual = sum(confusion[i])
    if not actual:  # absent from the data: a recall of 0 would be a claim the data cannot make
        return {"precision": 0.0 if predicted else None, "recall": None, "f1": None}
    precision = true_positive / predicted if predicted else 0.0
    recall = true_positive / actual
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def classification_metrics(
    gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy, macro-F1 (mean of the F1 of the classes the gold labels name) and the confusion matrix."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    size = len(labels)
    confusion = np.zeros((size, size), dtype=np.int64)
    np.add.at(confusion, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    table = tuple(tuple(int(v) for v in row) for row in confusion)
    count = len(gold)
    accuracy = float(np.trace(confusion)) / count if count else math.nan
    scores = [f1 for i in range(size) if (f1 := _prf(table, i)["f1"]) is not None]
    macro_f1 = float(np.mean(scores)) if scores else math.nan
    return ClassificationMetrics(tuple(labels), accuracy, macro_f1, table, count)


def evaluate_classifier(
    model_dir: Path | str | Sequence[Path | str],
    sources: Sequence[str | Path],
    *,
    columns: Columns = DEFAULT_COLUMNS,
    device: str = "auto",
    precision: str = "auto",
) -> ClassificationMetrics:
    """Metrics of a classifier checkpoint, or of an ensemble of several, on labelled data.

    Labelled data is any format `read_labelled` reads.
    """
    directories = [model_dir] if isinstance(model_dir, str | Path) else list(model_dir)
    predictor = load_predictor(directories, device=device, precision=precision)
    data = read_labelled(sources, columns=columns, known_labels=predictor.labels, min_classes=1)
    index = {label: i for i, label in enumerate(predictor.labels)}
    gold = [index[label] for label in data.labels]
    probabilities = predictor.probabilities(data.texts)
    metrics = classification_metrics(gold, probabilities.argmax(axis=1).tolist(), predictor.labels)
    return replace(metrics, reliability=reliability(probabilities, gold))
