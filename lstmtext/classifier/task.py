"""The classification task of the training loop: shuffled batches of similar-length labelled
texts, cross-entropy on the head's logits, validation accuracy (ties broken by loss)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmtext.classifier.distill import distillation_loss
from lstmtext.classifier.predict import classification_metrics, encode_texts, length_buckets, pad_batch
from lstmtext.config import ClassifierOptions, TrainConfig
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import LabelledData
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import autocast_context
from lstmtext.distributed import Distributed, row_block

# Batches are made of texts of similar length (little padding) drawn from pools of this many
# batches, so each batch is still a fair sample of the data.
POOL_BATCHES = 50
EVAL_BATCH_TOKENS = 32768
EVAL_BATCH_SIZE = 256

# ids (B, T), lengths (B,), targets (B,), the teacher's probabilities (B, classes) or None
ClassifierBatch = tuple[Tensor, Tensor, Tensor, Tensor | None]


def label_indices(labels: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    index = {label: i for i, label in enumerate(names)}
    return np.asarray([index[label] for label in labels], dtype=np.int64)


class ClassifierTask:
    """Batches, loss and validation of a classifier, for the one training loop (lstmtext.training.loop).

    An epoch's batch order comes from (random_state, epoch) alone, so a resume needs just the
    epoch and the batches taken in it. With several ranks each takes its block of every batch.
    `soft_targets` (N, classes), a teacher's probabilities of the training texts, turn the loss
    into lstmtext.classifier.distill's mix of labels and teacher.
    """

    def __init__(
        self,
        model: Classifier,
        config: TrainConfig,
        options: ClassifierOptions,
        tokenizer: TextTokenizer,
        labels: tuple[str, ...],
        train_data: LabelledData,
        val_data: LabelledData | None,
        device: torch.device,
        precision: str,
        distributed: Distributed | None = None,
        soft_targets: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.pad_id = tokenizer.pad_id
        self.labels = labels
        self.device = device
        self.precision = precision
        self.dist = distributed or Distributed()
        self.train_ids = encode_texts(tokenizer, train_data.texts, options.max_tokens)
        self.train_targets = label_indices(train_data.labels, labels)
        if soft_targets is not None and soft_targets.shape != (len(train_data), len(labels)):
            raise ValueError(f"soft targets of shape {soft_targets.shape} for {len(train_data)} texts")
        self.soft_targets = soft_targets
        self.teacher_weight = options.teacher_weight
        self.val_ids = encode_texts(tokenizer, val_data.texts) if val_data is not None else None
        self.val_targets = label_indices(val_data.labels, labels) if val_data is not None else None
        self.class_weight = None
        if options.class_weights:
            counts = np.bincount(self.train_targets, minlength=len(labels)).astype(np.float64)
            weights = len(self.train_targets) / (len(labels) * np.maximum(counts, 1))
            self.class_weight = torch.tensor(weights, dtype=torch.float32, device=device)
        self.lengths = np.asarray([len(ids) for ids in self.train_ids])
        self.steps_per_epoch = math.ceil(len(self.train_ids) / config.batch_size)
        self.epoch = 0
        self.batch_index = 0  # batches taken this epoch
        self._order: tuple[int, list[np.ndarray]] | None = None

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Shuffled batches of similar-length texts: sorted within pools, the batches shuffled."""
        if self._order is not None and self._order[0] == epoch:
            return self._order[1]
        rng = np.random.default_rng((self.config.random_state, epoch))
        size = self.config.batch_size
        order = rng.permutation(len(self.train_ids))
        pool = size * POOL_BATCHES
        batches: list[np.ndarray] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
        shuffled = [batches[i] for i in rng.permutation(len(batches))]
        self._order = (epoch, shuffled)
        return shuffled

    def next_batch(self, step: int) -> ClassifierBatch:
        if self.batch_index >= len(self.epoch_batches(self.epoch)):
            self.epoch, self.batch_index = self.epoch + 1, 0
        rows = self.epoch_batches(self.epoch)[self.batch_index]
        if self.dist.enabled:
            block = row_block(len(rows), self.dist.rank, self.dist.world_size)
            rows = rows[block.start : block.stop]
        ids, lengths = pad_batch([self.train_ids[i] for i in rows], self.pad_id)
        targets = torch.from_numpy(self.train_targets[rows])
        soft = (
            None if self.soft_targets is None else torch.from_numpy(self.soft_targets[rows]).to(self.device)
        )
        return ids.to(self.device), lengths.to(self.device), targets.to(self.device), soft

    def rate_factor(self, batch: ClassifierBatch) -> float:
        return 1.0

    def loss(self, network: nn.Module, batch: ClassifierBatch) -> tuple[Tensor, Tensor]:
        ids, lengths, targets, soft = batch
        logits = network(ids, lengths)  # (B, classes)
        if soft is not None:
            loss = distillation_loss(logits, targets, soft, self.teacher_weight, self.class_weight)
        else:
            loss = nn.functional.cross_entropy(logits.float(), targets, weight=self.class_weight)
        return loss, loss

    def advance(self, batch: ClassifierBatch) -> None:
        self.batch_index += 1

    def tokens(self, batch: ClassifierBatch) -> int:
        return int(batch[1].sum()) * self.dist.world_size

    @torch.no_grad()
    def logits(self, model: nn.Module | None = None) -> np.ndarray:
        """(N, classes) logits of the validation texts, by `model` (the task's own by default)."""
        assert self.val_ids is not None
        model = self.model if model is None else model
        was_training = model.training
        model.eval()
        logits = np.zeros((len(self.val_ids), len(self.labels)), dtype=np.float32)
        lengths = [len(ids) for ids in self.val_ids]
        for rows in length_buckets(lengths, EVAL_BATCH_TOKENS, EVAL_BATCH_SIZE):
            ids, row_lengths = pad_batch([self.val_ids[i] for i in rows], self.pad_id)
            with autocast_context(self.precision, self.device):
                out = model(ids.to(self.device), row_lengths.to(self.device))
            logits[rows] = out.float().cpu().numpy()
        model.train(was_training)
        return logits

    def evaluate(self) -> dict[str, float] | None:
        if self.val_ids is None or self.val_targets is None:
            return None
        logits = self.logits()
        targets = torch.from_numpy(self.val_targets)
        loss = nn.functional.cross_entropy(torch.from_numpy(logits), targets).item()
        predicted = logits.argmax(axis=-1)
        metrics = classification_metrics(self.val_targets.tolist(), predicted.tolist(), self.labels)
        return {"val_loss": loss, "val_accuracy": metrics.accuracy, "val_macro_f1": metrics.macro_f1}

    @staticmethod
    def score(metrics: dict[str, float]) -> tuple[float, ...]:
        return (metrics["val_accuracy"], -metrics["val_loss"])

    @staticmethod
    def describe(metrics: dict[str, float]) -> str:
        return f"val accuracy {metrics['val_accuracy']:.4f}  macro-F1 {metrics['val_macro_f1']:.4f}"

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_index": self.batch_index}

    def tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        self.epoch = int(state["epoch"])
        self.batch_index = int(state["batch_index"])
