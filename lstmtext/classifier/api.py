"""Classifier training from Python: labelled text in, a calibrated classifier checkpoint out.

result = train_classifier(["train.tsv"], TokenizerConfig("bpe"), ModelShape(), TrainConfig(epochs=3),
                          "runs/sentiment", options=ClassifierOptions(start_from="runs/lm"))

With `start_from`, tokenizer, embedding and LSTM core come from a trained language model
(ULMFiT transfer) or from another classifier (whose head comes too when its labels are the
same, so a model is fine-tuned on a new domain). The training loop is lstmtext.training.loop's, over a
ClassifierTask; at the end a temperature is fitted on the validation data (calibration).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.classifier.calibrate import calibrate_run
from lstmtext.classifier.distill import teacher_probabilities
from lstmtext.classifier.resume import resumed_config, resumed_settings
from lstmtext.classifier.task import ClassifierTask
from lstmtext.config import (
    ClassifierOptions,
    ModelConfig,
    ModelShape,
    RunConfig,
    TokenizerConfig,
    TrainConfig,
)
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import Columns, LabelledData, read_labelled
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.device import kept_rng, resolve_precision, select_device
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.events import TrainEvent, TrainResult
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.resume_files import run_fingerprint
from lstmtext.runs.run_directory import claim_run_directory
from lstmtext.threads import torch_threads
from lstmtext.training.loop import Trainer

__all__ = ["ClassifierOptions", "classifier_trainer", "split_validation", "train_classifier", "transfer_core"]


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


def classifier_config(
    base: ModelConfig, labels: tuple[str, ...], shape: ModelShape | None = None
) -> ModelConfig:
    """A classifier's model config on `base`'s core; `shape` sets its dropout when given."""
    config = replace(base, task="classify", num_classes=len(labels), tie_weights=False, softmax_cutoff=0)
    if shape is None:
        return config
    return replace(
        config,
        dropout=shape.dropout,
        embedding_dropout=shape.embedding_dropout,
        locked_dropout=shape.locked_dropout,
        weight_drop=shape.weight_drop,
    )


def build_classifier(
    train_data: LabelledData,
    labels: tuple[str, ...],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    options: ClassifierOptions,
    out_dir: Path,
    resume: bool,
) -> tuple[Classifier, TextTokenizer, TokenizerConfig]:
    """The model to train: the run's own on resume, else on a transferred core, else a new one."""
    if resume:
        last = ckpt.resume_directory(out_dir / "checkpoints" / "last")
        if not last.exists():
            raise CheckpointError(f"nothing to resume: {last} does not exist")
        previous = ckpt.read_config(last)
        if previous.labels != labels:
            raise ConfigError(
                f"cannot resume: the run in --out was trained on labels {', '.join(previous.labels)}, "
                f"this data has {', '.join(labels)}"
            )
        return Classifier(previous.model), TextTokenizer.load(last / ckpt.TOKENIZER), previous.tokenizer
    if options.start_from is not None:
        source = Path(options.start_from)
        source_config = ckpt.read_config(source)
        # Its sizes against its weights first: the classifier below is built from them.
        ckpt.check_weight_shapes(source_config.model, source / ckpt.WEIGHTS)
        model = Classifier(classifier_config(source_config.model, labels, shape))
        tokenizer, tokenizer_config = transfer_core(model, source, labels)
        return model, tokenizer, tokenizer_config
    tokenizer = TextTokenizer.train(list(train_data.texts), tokenizer_config)
    model = Classifier(classifier_config(shape.model_config(tokenizer.vocab_size), labels))
    return model, tokenizer, tokenizer_config


def train_classifier(
    sources: Sequence[str | Path],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    train_config: TrainConfig,
    out_dir: Path | str,
    *,
    options: ClassifierOptions | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    stop_event: threading.Event | None = None,
    overwrite: bool = False,
    resume: bool = False,
    resume_fields: Collection[str] | None = None,
) -> TrainResult:
    """Read labelled data, build the tokenizer and model (fresh, from an LM, or the run's own on
    resume), fine-tune, and calibrate.

    A folder that already holds files is refused unless `resume` continues its run or
    `overwrite` clears the old run first. On resume, the options named in `resume_fields` (the
    ones given; None: all) must be the run's (lstmtext.classifier.resume)."""
    out_dir = Path(out_dir)
    options = options or ClassifierOptions()
    device = select_device(train_config.device)
    with (
        torch_threads(train_config.threads),  # given back afterwards
        kept_rng(device),
        claim_run_directory(out_dir, resume=resume, overwrite=overwrite) as run_directory,
    ):
        if resume:  # before any data is read: options that differ from the run's are refused
            train_config, options = resumed_settings(
                resumed_config(out_dir), shape, tokenizer_config, train_config, options, resume_fields
            )
        columns = Columns(label=options.label_column, text=options.text_column)
        data = read_labelled(sources, columns=columns)
        labels = data.label_names
        train_data: LabelledData = data
        val_data: LabelledData | None
        if options.val_sources:
            val_data = read_labelled(options.val_sources, columns=columns, known_labels=labels, min_classes=1)
        else:
            train_data, val_data = split_validation(
                data, train_config.val_fraction, train_config.random_state
            )
        torch.manual_seed(train_config.random_state)
        model, tokenizer, tokenizer_config = build_classifier(
            train_data, labels, tokenizer_config, shape, options, out_dir, resume
        )
        run_config = RunConfig(
            tokenizer=tokenizer_config,
            model=model.config,
            train=train_config,
            labels=labels,
            classifier=options,
        )
        trainer = classifier_trainer(
            run_config,
            tokenizer,
            model,
            train_data,
            val_data,
            out_dir,
            on_event=on_event,
            stop_event=stop_event,
        )
        run_directory.begin()
        try:
            result = trainer.fit(resume=resume)
            if result.stop_reason == "interrupted" and result.steps == 0 and not resume:
                discard_untrained(out_dir)
                return result
            task = trainer.task
            assert isinstance(task, ClassifierTask)
            if result.best_step is not None and result.stop_reason != "diverged" and task.val_ids is not None:
                result.temperature = calibrate_run(task, run_config, out_dir)
        except OSError as error:  # the loop reads nothing: a failed write (full disk, read-only)
            raise ckpt.save_error(out_dir, error) from error
        return result


def discard_untrained(out_dir: Path) -> None:
    """Remove what a new run wrote before its first step (its untrained model, the resume
    checkpoint of step 0): interrupted there, nothing was trained worth keeping."""
    import shutil

    for name in (ckpt.CONFIG, ckpt.TOKENIZER, ckpt.WEIGHTS, ckpt.METRICS):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)


def classifier_trainer(
    run_config: RunConfig,
    tokenizer: TextTokenizer,
    model: Classifier,
    train_data: LabelledData,
    val_data: LabelledData | None,
    out_dir: Path | str,
    **options: Any,
) -> Trainer:
    """The training loop over a ClassifierTask on `model`; `options` go to lstmtext.training.loop.Trainer
    (on_event, stop_event). Seed torch before building `model`."""
    config = run_config.train
    device = select_device(config.device)
    precision = resolve_precision(config.precision, device)
    classifier_options = run_config.classifier or ClassifierOptions()
    soft_targets = None
    if classifier_options.teacher is not None:
        soft_targets = teacher_probabilities(
            classifier_options.teacher,
            train_data.texts,
            run_config.labels,
            device=str(device),
            precision=precision,
        )
    task = ClassifierTask(
        model,
        config,
        classifier_options,
        tokenizer,
        run_config.labels,
        train_data,
        val_data,
        device,
        precision,
        soft_targets=soft_targets,
    )
    fingerprint = data_fingerprint(tokenizer, task)
    return Trainer(run_config, tokenizer, task, out_dir, fingerprint=fingerprint, device=device, **options)


def data_fingerprint(tokenizer: TextTokenizer, task: ClassifierTask) -> dict[str, str]:
    """The run fingerprint of lstmtext.lm.api over the texts' ids and labels."""
    ids = np.concatenate([*task.train_ids, task.train_targets]) if task.train_ids else task.train_targets
    return run_fingerprint(tokenizer, ids, None)
