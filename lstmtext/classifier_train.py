"""Fine-tuning a classifier head (and the core under it) on labelled text.

result = train_classifier(["train.tsv"], TokenizerConfig("bpe"), ModelShape(), TrainConfig(epochs=3),
                          "runs/sentiment", options=ClassifierOptions(start_from=Path("runs/lm")))

With `start_from`, tokenizer, embedding and LSTM core come from a trained language model
(ULMFiT transfer) or from another classifier (whose head comes too when its labels are the
same, so a model is fine-tuned on a new domain); the options add ULMFiT's two fine-tuning
tricks: discriminative learning rates
(each layer group below the head learns `discriminative_lr` times slower than the one above)
and gradual unfreezing (the head trains alone first, then one more group every
`unfreeze_every` steps, from the top down), so the general knowledge in the lower layers is
not wiped out by the first, large gradients of a random head.

The loop reports through `on_event` (the LM loop's TrainEvent) and never prints. The run
directory is a checkpoint of the best model by validation accuracy from the first step on.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lstmtext import checkpoint as ckpt
from lstmtext.classify import classification_metrics, encode_texts, length_buckets, pad_batch
from lstmtext.config import RunConfig, TokenizerConfig, TrainConfig
from lstmtext.device import autocast_context, resolve_precision, select_device
from lstmtext.errors import ConfigError
from lstmtext.labelled import Columns, LabelledData, read_labelled
from lstmtext.language_model import ModelShape
from lstmtext.model import Classifier
from lstmtext.run_directory import claim_run_directory
from lstmtext.schedule import slanted_triangular
from lstmtext.threads import torch_threads
from lstmtext.tokenizer import TextTokenizer
from lstmtext.train import TrainEvent, fused_adam
from lstmtext.weight_ema import WeightAverage, kept_weights


@dataclass(frozen=True)
class ClassifierOptions:
    """What classification training adds to the LM options."""

    start_from: Path | None = None  # LM or classifier whose tokenizer, embedding and core to start from
    columns: Columns = Columns()
    val_sources: tuple[str, ...] = ()  # labelled validation data instead of a split of the training data
    max_tokens: int = 512  # longer texts keep their first quarter and last three quarters in training
    unfreeze_every: int = 0  # gradual unfreezing: steps per stage (0: everything trains from the start)
    discriminative_lr: float = 1.0  # lr ratio between a layer group and the one below it (ULMFiT: 2.6)
    class_weights: bool = False  # weight the loss by inverse class frequency

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max tokens must be positive, not {self.max_tokens}")
        if self.unfreeze_every < 0:
            raise ConfigError(f"unfreeze every must be >= 0, not {self.unfreeze_every}")
        if self.discriminative_lr < 1.0:
            raise ConfigError(f"discriminative lr factor must be >= 1, not {self.discriminative_lr}")


@dataclass
class ClassifierResult:
    steps: int
    best_val_accuracy: float | None
    best_val_loss: float | None
    best_step: int | None
    last_loss: float | None
    stop_reason: str  # finished | max_time | early_stopping | interrupted | diverged
    out_dir: Path
    elapsed: float
    labels: tuple[str, ...]
    history: list[dict[str, Any]] = field(default_factory=list)
    temperature: float | None = None  # fitted on the validation data at the end (None: no validation data)


def split_validation(
    data: LabelledData, fraction: float, seed: int
) -> tuple[LabelledData, LabelledData | None]:
    """Stratified split: each class gives `fraction` of its rows (at least one when it has two)."""
    if fraction <= 0:
        return data, None
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    held: list[int] = []
    for label in data.label_names:
        rows = np.flatnonzero(labels == label)
        take = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
        held.extend(rng.permutation(rows)[:take].tolist())
    held_set = set(held)
    keep = [i for i in range(len(data)) if i not in held_set]
    held.sort()

    def subset(rows: list[int]) -> LabelledData:
        return LabelledData(
            tuple(data.texts[i] for i in rows),
            tuple(data.labels[i] for i in rows),
            tuple(data.origins[i] for i in rows),
        )

    return subset(keep), (subset(held) if held else None)


def layer_groups(model: Classifier) -> list[list[nn.Parameter]]:
    """Parameters from the bottom up: embedding, each LSTM layer, the head."""
    groups: list[list[nn.Parameter]] = [list(model.core.embedding.parameters())]
    for layer in range(model.config.num_layers):
        groups.append([p for n, p in model.core.lstm.named_parameters() if n.endswith(f"_l{layer}")])
    groups.append(list(model.head.parameters()))
    return groups


def transfer_core(
    model: Classifier, source_dir: Path, labels: tuple[str, ...] = ()
) -> tuple[TextTokenizer, TokenizerConfig]:
    """Copy embedding and LSTM weights of the model in `source_dir` (a language model or a
    classifier) into `model`, and a classifier's head too when it names the same `labels` in
    the same order; return the source's tokenizer."""
    source = ckpt.load_checkpoint(source_dir)
    model.core.load_state_dict(source.model.core.state_dict())
    if isinstance(source.model, Classifier) and labels and source.config.labels == tuple(labels):
        model.head.load_state_dict(source.model.head.state_dict())
    return source.tokenizer, source.config.tokenizer


class ClassifierTrainer:
    """The fine-tuning loop over length-bucketed batches of labelled texts."""

    def __init__(
        self,
        run_config: RunConfig,
        tokenizer: TextTokenizer,
        model: Classifier,
        train_data: LabelledData,
        val_data: LabelledData | None,
        out_dir: Path,
        options: ClassifierOptions,
        *,
        on_event: Callable[[TrainEvent], None] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.run_config = run_config
        self.config = run_config.train
        self.labels = run_config.labels
        self.tokenizer = tokenizer
        self.options = options
        self.out_dir = out_dir
        self.on_event = on_event or (lambda event: None)
        self.stop_event = stop_event or threading.Event()
        self.device = select_device(self.config.device)
        self.precision = resolve_precision(self.config.precision, self.device)
        self.model = model.to(self.device)
        index = {label: i for i, label in enumerate(self.labels)}
        self.train_ids = encode_texts(tokenizer, train_data.texts, options.max_tokens)
        self.train_targets = np.asarray([index[label] for label in train_data.labels], dtype=np.int64)
        self.val_ids = encode_texts(tokenizer, val_data.texts) if val_data is not None else None
        self.val_targets = (
            np.asarray([index[label] for label in val_data.labels], dtype=np.int64)
            if val_data is not None
            else None
        )
        weights = None
        if options.class_weights:
            counts = np.bincount(self.train_targets, minlength=len(self.labels)).astype(np.float64)
            weights = torch.tensor(len(self.train_targets) / (len(self.labels) * np.maximum(counts, 1)))
        self.class_weight = weights.float().to(self.device) if weights is not None else None
        self.groups = layer_groups(model)
        top = len(self.groups) - 1
        group_params = [
            {"params": params, "base_lr": self.config.lr / options.discriminative_lr ** (top - depth)}
            for depth, params in enumerate(self.groups)
        ]
        if self.config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                group_params, lr=self.config.lr, momentum=0.9, weight_decay=self.config.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(
                group_params,
                lr=self.config.lr,
                betas=(0.9, 0.99),
                weight_decay=self.config.weight_decay,
                fused=fused_adam(model.parameters()),
            )
        self.average = WeightAverage(model, self.config.ema) if self.config.ema > 0 else None
        self.rng = np.random.default_rng(self.config.random_state)
        self.steps_per_epoch = math.ceil(len(self.train_ids) / self.config.batch_size)
        self.total_steps = self._total_steps()
        self.step = 0
        self.plateau_scale = 1.0
        self.best: tuple[float, float] | None = None  # (accuracy, -loss): higher is better
        self.best_step: int | None = None
        self.stalled = 0
        self.history: list[dict[str, Any]] = []
        self.frozen_stage = -1

    def _total_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        if self.config.epochs is None and self.config.max_time is not None:
            return 0
        return max(1, round((self.config.epochs or 1) * self.steps_per_epoch))

    def _lr_scale(self, elapsed: float) -> float:
        warmup = self.config.warmup_steps
        if warmup and self.step < warmup:
            return (self.step + 1) / warmup
        if self.config.lr_schedule == "cosine" and self.total_steps > warmup:
            progress = min(1.0, (self.step - warmup) / (self.total_steps - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        if self.config.lr_schedule == "cosine" and not self.total_steps and self.config.max_time:
            # Only a time budget: anneal over the clock, so the run ends at a low rate on any machine.
            progress = min(1.0, elapsed / self.config.max_time)
            return 0.5 * (1 + math.cos(math.pi * progress))
        if self.config.lr_schedule == "slanted":
            if self.total_steps > warmup:
                return slanted_triangular((self.step - warmup) / (self.total_steps - warmup))
            if self.config.max_time:
                return slanted_triangular(elapsed / self.config.max_time)
        return self.plateau_scale

    def _unfreeze(self) -> None:
        """Gradual unfreezing: at stage k the top k+1 groups train, the rest stay as loaded."""
        every = self.options.unfreeze_every
        stage = len(self.groups) if every == 0 else self.step // every
        if stage == self.frozen_stage:
            return
        self.frozen_stage = stage
        top = len(self.groups) - 1
        for depth, params in enumerate(self.groups):
            for parameter in params:
                parameter.requires_grad_(depth >= top - stage)
        if every and stage <= top:
            trainable = "head" if stage == 0 else f"the top {stage + 1} layer groups"
            self.on_event(TrainEvent("warning", self.step, self.total_steps, message=f"training {trainable}"))

    def _batches(self) -> Iterator[list[int]]:
        """Shuffled batches of similar-length texts: sort within pools of 50 batches, shuffle the batches."""
        size = self.config.batch_size
        lengths = np.asarray([len(ids) for ids in self.train_ids])
        while True:
            order = self.rng.permutation(len(self.train_ids))
            pool = size * 50
            batches: list[list[int]] = []
            for start in range(0, len(order), pool):
                chunk = order[start : start + pool]
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
                batches.extend(chunk[i : i + size].tolist() for i in range(0, len(chunk), size))
            for batch in self.rng.permutation(len(batches)):
                yield batches[batch]

    def _loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(logits.float(), targets, weight=self.class_weight)

    def _train_step(self, rows: list[int], elapsed: float) -> tuple[float, int]:
        ids, lengths = pad_batch([self.train_ids[i] for i in rows], self.tokenizer.pad_id)
        targets = torch.from_numpy(self.train_targets[rows]).to(self.device)
        scale = self._lr_scale(elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * scale
        with autocast_context(self.precision, self.device):
            logits = self.model(ids.to(self.device), lengths.to(self.device))  # (B, classes)
            loss = self._loss(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip > 0:
            nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.config.clip
            )
        self.optimizer.step()
        return loss.item(), int(lengths.sum())

    @torch.no_grad()
    def evaluate(self) -> dict[str, float] | None:
        if self.val_ids is None or self.val_targets is None:
            return None
        self.model.eval()
        predicted = np.zeros(len(self.val_ids), dtype=np.int64)
        total_loss = 0.0
        for rows in length_buckets([len(ids) for ids in self.val_ids], 32768, 256):
            ids, lengths = pad_batch([self.val_ids[i] for i in rows], self.tokenizer.pad_id)
            targets = torch.from_numpy(self.val_targets[rows]).to(self.device)
            with autocast_context(self.precision, self.device):
                logits = self.model(ids.to(self.device), lengths.to(self.device))
            total_loss += nn.functional.cross_entropy(logits.float(), targets, reduction="sum").item()
            predicted[rows] = logits.argmax(dim=-1).cpu().numpy()
        self.model.train()
        metrics = classification_metrics(self.val_targets.tolist(), predicted.tolist(), self.labels)
        return {
            "val_loss": total_loss / len(self.val_ids),
            "val_accuracy": metrics.accuracy,
            "val_macro_f1": metrics.macro_f1,
        }

    def _save_best(self, metrics: dict[str, float] | None) -> None:
        with kept_weights(self.average):
            ckpt.save_weights(self.model, self.out_dir / ckpt.WEIGHTS)
        record = {"step": self.step} | (metrics or {})
        ckpt.atomic_write_text(self.out_dir / ckpt.BEST, json.dumps(record, indent=1) + "\n")

    def _eval_and_save(self, loss: float | None, elapsed: float) -> bool:
        """Evaluate, keep the best weights, log. True: stop early."""
        with kept_weights(self.average):
            metrics = self.evaluate()
        lr = self.optimizer.param_groups[-1]["lr"]
        record = {"kind": "eval", "step": self.step, "loss": loss, "lr": lr, "elapsed": elapsed} | (
            metrics or {}
        )
        self.history.append(record)
        ckpt.atomic_write_text(
            self.out_dir / ckpt.METRICS, "".join(json.dumps(h) + "\n" for h in self.history)
        )
        message = ""
        if metrics is not None:
            score = (metrics["val_accuracy"], -metrics["val_loss"])
            message = f"val accuracy {metrics['val_accuracy']:.4f}  macro-F1 {metrics['val_macro_f1']:.4f}"
            if self.best is None or score > self.best:
                self.best, self.best_step, self.stalled = score, self.step, 0
                self._save_best(metrics)
            else:
                self.stalled += 1
                if self.config.lr_schedule == "plateau":
                    self.plateau_scale *= self.config.lr_decay
        self.on_event(
            TrainEvent(
                "eval",
                self.step,
                self.total_steps,
                loss=loss,
                val_loss=None if metrics is None else metrics["val_loss"],
                lr=lr,
                elapsed=elapsed,
                message=message,
            )
        )
        patience = self.config.patience
        return metrics is not None and patience is not None and self.stalled >= patience

    def fit(self) -> ClassifierResult:
        ckpt.write_model_files(self.out_dir, self.run_config, self.tokenizer, self.model)
        ckpt.atomic_write_text(self.out_dir / ckpt.METRICS, "")  # a new run: no earlier run's records
        started = time.perf_counter()
        self.model.train()
        batches = self._batches()
        stop_reason = "finished"
        last_loss: float | None = None
        window_tokens, window_start = 0, time.perf_counter()
        log_every = max(1, min(50, self.config.eval_every // 4 or 1))
        evaluated_at = -1
        while True:
            elapsed = time.perf_counter() - started
            if self.total_steps and self.step >= self.total_steps:
                break
            if self.config.max_time is not None and elapsed >= self.config.max_time:
                stop_reason = "max_time"
                break
            if self.stop_event.is_set():
                stop_reason = "interrupted"
                break
            self._unfreeze()
            loss, tokens = self._train_step(next(batches), elapsed)
            if not math.isfinite(loss):
                stop_reason = "diverged"
                self.on_event(
                    TrainEvent("stop", self.step, self.total_steps, message=f"loss became {loss}; stopping")
                )
                break
            self.step += 1
            if self.average is not None:
                self.average.update(self.step)
            last_loss = loss
            window_tokens += tokens
            if self.step % log_every == 0:
                now = time.perf_counter()
                speed = window_tokens / max(now - window_start, 1e-9)
                window_tokens, window_start = 0, now
                lr = self.optimizer.param_groups[-1]["lr"]
                record = {"kind": "log", "step": self.step, "loss": loss, "lr": lr, "elapsed": now - started}
                self.history.append(record)
                ckpt.append_metrics(self.out_dir, record)
                self.on_event(
                    TrainEvent(
                        "log",
                        self.step,
                        self.total_steps,
                        loss=loss,
                        lr=lr,
                        tokens_per_second=speed,
                        elapsed=now - started,
                    )
                )
            if self.step % self.config.eval_every == 0:
                evaluated_at = self.step
                if self._eval_and_save(loss, time.perf_counter() - started):
                    stop_reason = "early_stopping"
                    break
        if stop_reason != "diverged" and self.step > 0 and evaluated_at != self.step:
            self._eval_and_save(last_loss, time.perf_counter() - started)
        if self.best_step is None and self.step > 0 and stop_reason != "diverged":
            self._save_best(None)  # no validation data: the last weights are the best we know
        best_accuracy = None if self.best is None else self.best[0]
        best_loss = None if self.best is None else -self.best[1]
        temperature = self._calibrate() if self.best_step is not None and stop_reason != "diverged" else None
        return ClassifierResult(
            steps=self.step,
            best_val_accuracy=best_accuracy,
            best_val_loss=best_loss,
            best_step=self.best_step,
            last_loss=last_loss,
            stop_reason=stop_reason,
            out_dir=self.out_dir,
            elapsed=time.perf_counter() - started,
            labels=self.labels,
            history=self.history,
            temperature=temperature,
        )

    def _calibrate(self) -> float:
        """Fit the temperature of the best weights on the validation data; store it in config.json.

        The best weights are read back from disk into a copy, so the trainer's own model (the
        last weights) is left as it was.
        """
        from lstmtext.calibration import fit_temperature

        assert self.val_ids is not None and self.val_targets is not None
        best = Classifier(self.run_config.model)
        ckpt.load_weights(best, self.out_dir / ckpt.WEIGHTS)
        best.to(self.device).eval()
        logits = np.zeros((len(self.val_ids), len(self.labels)), dtype=np.float32)
        with torch.no_grad():
            for rows in length_buckets([len(ids) for ids in self.val_ids], 32768, 256):
                ids, lengths = pad_batch([self.val_ids[i] for i in rows], self.tokenizer.pad_id)
                with autocast_context(self.precision, self.device):
                    out = best(ids.to(self.device), lengths.to(self.device))
                logits[rows] = out.float().cpu().numpy()
        temperature = fit_temperature(logits, self.val_targets)
        self.run_config = replace(self.run_config, temperature=temperature)
        ckpt.atomic_write_text(self.out_dir / ckpt.CONFIG, self.run_config.to_json())
        return temperature


def train_classifier(
    sources: Sequence[str | Path],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    train_config: TrainConfig,
    out_dir: Path | str,
    *,
    options: ClassifierOptions = ClassifierOptions(),
    on_event: Callable[[TrainEvent], None] | None = None,
    stop_event: threading.Event | None = None,
    overwrite: bool = False,
) -> ClassifierResult:
    """Read labelled data, build the tokenizer and model (fresh or from an LM), and fine-tune.

    A folder that already holds files is refused unless `overwrite` clears the old run first."""
    out_dir = Path(out_dir)
    with (
        torch_threads(train_config.threads),  # given back afterwards
        claim_run_directory(out_dir, resume=False, overwrite=overwrite) as run_directory,
    ):
        data = read_labelled(sources, columns=options.columns)
        labels = data.label_names
        if options.val_sources:
            train_data: LabelledData = data
            val_data: LabelledData | None = read_labelled(
                options.val_sources, columns=options.columns, known_labels=labels, min_classes=1
            )
        else:
            train_data, val_data = split_validation(
                data, train_config.val_fraction, train_config.random_state
            )
        torch.manual_seed(train_config.random_state)
        if options.start_from is not None:
            source_config = ckpt.read_config(Path(options.start_from))
            # Its sizes against its weights first: the classifier below is built from them.
            ckpt.check_weight_shapes(source_config.model, Path(options.start_from) / ckpt.WEIGHTS)
            model_config = replace(
                source_config.model,
                task="classify",
                num_classes=len(labels),
                tie_weights=False,
                softmax_cutoff=0,
                dropout=shape.dropout,
                embedding_dropout=shape.embedding_dropout,
                locked_dropout=shape.locked_dropout,
                weight_drop=shape.weight_drop,
            )
            model = Classifier(model_config)
            tokenizer, tokenizer_config = transfer_core(model, Path(options.start_from), labels)
        else:
            tokenizer = TextTokenizer.train(list(train_data.texts), tokenizer_config)
            model_config = replace(
                shape.model_config(tokenizer.vocab_size),
                task="classify",
                num_classes=len(labels),
                tie_weights=False,
                softmax_cutoff=0,
            )
            model = Classifier(model_config)
        run_config = RunConfig(
            tokenizer=tokenizer_config,
            model=model_config,
            train=replace(train_config, seq_len=options.max_tokens),
            labels=labels,
        )
        trainer = ClassifierTrainer(
            run_config,
            tokenizer,
            model,
            train_data,
            val_data,
            out_dir,
            options,
            on_event=on_event,
            stop_event=stop_event,
        )
        run_directory.begin()
        try:
            return trainer.fit()
        except OSError as error:  # the loop reads nothing: a failed write (full disk, read-only)
            raise ckpt.save_error(out_dir, error) from error
