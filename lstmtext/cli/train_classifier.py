"""`lstmtext train-classifier`: labelled data -> a classifier head on an LSTM core.

Only the options a classifier uses are here; `lstmtext train` is the language model's. The
deprecated `lstmtext train --task classify` ends in `train_classifier_command` too.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lstmtext.cli.configs import check_max_time, classifier_options, training_configs, typed_fields
from lstmtext.cli.options import (
    DATA,
    OPTIM,
    RUN,
    ClassWeights,
    Clip,
    Device,
    DiscriminativeLr,
    Dropout,
    Ema,
    Embed,
    EmbedDropout,
    Hidden,
    KeepLast,
    LabelColumn,
    Layers,
    LevelOption,
    LockedDropout,
    Lowercase,
    Lr,
    MaxSteps,
    MaxTime,
    MaxTokens,
    MaxVocab,
    MinFrequency,
    OptimizerOption,
    Overwrite,
    Patience,
    PrecisionOption,
    RandomState,
    Resume,
    ScheduleOption,
    StartFrom,
    Teacher,
    TeacherWeight,
    TextColumn,
    Threads,
    Unfreeze,
    VocabSize,
    Warmup,
    WeightDecay,
    WeightDrop,
    output_folder,
    stop_on_signals,
)
from lstmtext.config import Level, Optimizer, Precision, Schedule, TokenizerConfig, TrainConfig
from lstmtext.errors import ConfigError, TrainingDiverged, TrainingInterrupted

# classifier_train, distributed and language_model import torch (seconds): each is imported
# where it is used, so that `lstmtext train-classifier --help` shows at once.
if TYPE_CHECKING:
    from lstmtext.config import ClassifierOptions, ModelShape
    from lstmtext.events import TrainResult


def train_classifier(
    ctx: typer.Context,
    labelled: Annotated[
        list[str],
        typer.Argument(
            help="Labelled data: TSV label<TAB>text, CSV/TSV with a header, JSONL, a folder per "
            "label, or a catalogue name (e.g. sst2)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", parser=output_folder, help="Run directory (model, metrics).", rich_help_panel=RUN
        ),
    ] = Path("runs/classifier"),
    start_from: StartFrom = None,
    unfreeze: Unfreeze = 0,
    discriminative_lr: DiscriminativeLr = 1.0,
    label_column: LabelColumn = "label",
    text_column: TextColumn = "text",
    max_tokens: MaxTokens = 512,
    class_weights: ClassWeights = False,
    teacher: Teacher = None,
    teacher_weight: TeacherWeight = 0.7,
    val: Annotated[
        list[str] | None,
        typer.Option(
            "--val", help="Labelled validation data (instead of --val-fraction).", rich_help_panel=DATA
        ),
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option(
            help="Fraction of each class held out for validation (stratified; 0: none).", rich_help_panel=DATA
        ),
    ] = 0.1,
    level: LevelOption = Level.char,
    vocab_size: VocabSize = 8000,
    min_frequency: MinFrequency = 1,
    max_vocab: MaxVocab = None,
    lowercase: Lowercase = False,
    layers: Layers = 2,
    hidden: Hidden = 512,
    embed: Embed = 128,
    dropout: Dropout = 0.2,
    embed_dropout: EmbedDropout = 0.0,
    locked_dropout: LockedDropout = False,
    weight_drop: WeightDrop = 0.0,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.", rich_help_panel=OPTIM)] = 64,
    lr: Lr = 2e-3,
    optimizer: OptimizerOption = Optimizer.adam,
    weight_decay: WeightDecay = 0.0,
    schedule: ScheduleOption = Schedule.plateau,
    warmup: Warmup = 0,
    clip: Clip = 5.0,
    ema: Ema = 0.0,
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Passes over the training texts (default 1 unless --max-steps/--max-time).",
            rich_help_panel=RUN,
        ),
    ] = None,
    max_steps: MaxSteps = None,
    max_time: MaxTime = None,
    eval_every: Annotated[
        int,
        typer.Option(
            help="Steps between evaluations; the weights of the best validation accuracy are kept.",
            rich_help_panel=RUN,
        ),
    ] = 200,
    patience: Patience = 5,
    keep_last: KeepLast = 2,
    resume: Resume = False,
    overwrite: Overwrite = False,
    random_state: RandomState = 1337,
    device: Device = "auto",
    precision: PrecisionOption = Precision.auto,
    threads: Threads = None,
) -> None:
    """Train a classifier on LABELLED texts and save it in --out.

    A classifier is the LSTM core with a head on its pooled outputs; it trains in one
    process, keeps the weights of the best validation accuracy, resumes with --resume, and
    fits a temperature on the validation data at the end, so its probabilities are calibrated.

    \b
    Examples: [bold]lstmtext train-classifier sst2 --val sst2:valid --out runs/sst2[/]
    [bold]lstmtext train-classifier imdb --from runs/imdb-lm --unfreeze 300 --out runs/imdb[/]
    """
    from lstmtext import distributed

    if distributed.from_environment().enabled:
        raise ConfigError("train-classifier trains in one process: not under torchrun")
    check_max_time(max_time)
    # The options reach the configs by name (cli/configs.py), as train's do.
    tokenizer_config, shape, train_config = training_configs(ctx.params)
    options = classifier_options(ctx.params)
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out, --overwrite replaces it: not both")
    train_classifier_command(
        labelled,
        tokenizer_config,
        shape,
        train_config,
        out,
        options=options,
        overwrite=overwrite,
        resume=resume,
        resume_fields=_typed(ctx),
    )


def _typed(ctx: typer.Context) -> set[str]:
    """The options a resume checks against the run's: those given on the command line."""
    typed = typed_fields(ctx)
    for option in ("batch_size", "teacher"):  # lstmtext.classifier.resume.KEPT: imports torch
        source = ctx.get_parameter_source(option)
        if source is not None and source.name == "COMMANDLINE":
            typed.add(option)
    return typed


def train_classifier_command(
    sources: Sequence[str],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    train_config: TrainConfig,
    out: Path,
    *,
    options: ClassifierOptions,
    overwrite: bool = False,
    resume: bool = False,
    resume_fields: set[str] | None = None,
) -> TrainResult:
    """Train, report one line per evaluation, and turn Ctrl-C into a clean stop with the best model kept."""
    from lstmtext.classifier.api import train_classifier as fine_tune
    from lstmtext.cli.render import best_text, classifier_progress, summary_line

    with stop_on_signals() as (stop, received):
        result = fine_tune(
            sources,
            tokenizer_config,
            shape,
            train_config,
            out,
            options=options,
            on_event=classifier_progress,
            stop_event=stop,
            overwrite=overwrite,
            resume=resume,
            resume_fields=resume_fields,
        )
    if result.stop_reason == "interrupted" and result.steps == 0:
        raise TrainingInterrupted(
            f"interrupted before the first step: nothing was trained, no classifier written in {out}",
            received[0] if received else signal.SIGINT,
        )
    if result.stop_reason == "interrupted":
        raise TrainingInterrupted(
            f"interrupted at step {result.steps}; the best classifier so far and a checkpoint are in "
            f"{out}; continue with --resume",
            received[0] if received else signal.SIGINT,
        )
    best = best_text(result.best_val_accuracy, result.best_step)
    if result.stop_reason == "diverged":
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite at step {result.steps}; "
            f"the best classifier so far (validation accuracy {best}) is in {out}; try a lower --lr or --clip"
        )
    calibrated = "" if result.temperature is None else f" (temperature {result.temperature:.3f})"
    typer.echo(
        f"{summary_line(result)}; best validation accuracy {best}; "
        f"classifier ({', '.join(result.labels)}){calibrated} in {out}",
        err=True,
    )
    return result
