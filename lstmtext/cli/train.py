"""`lstmtext train`: options -> configs -> library -> rendered events."""

from __future__ import annotations

import contextlib
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lstmtext.cli.configs import check_max_time, classifier_options, training_configs, typed_fields
from lstmtext.cli.options import (
    DATA,
    MODEL,
    OPTIM,
    RUN,
    Clip,
    Device,
    DiscriminativeLr,
    Dropout,
    Ema,
    Embed,
    EmbedDropout,
    Hidden,
    KeepLast,
    Layers,
    LevelOption,
    LockedDropout,
    Lowercase,
    Lr,
    MaxSteps,
    MaxTime,
    MaxVocab,
    MinFrequency,
    OptimizerOption,
    Overwrite,
    Patience,
    PrecisionOption,
    RandomState,
    Resume,
    ScheduleOption,
    Threads,
    Unfreeze,
    VocabSize,
    Warmup,
    WeightDecay,
    WeightDrop,
    model_folder,
    output_folder,
    stop_on_signals,
)
from lstmtext.cli.relaunch import command_line, run_under_torchrun
from lstmtext.config import Level, Optimizer, Precision, Schedule
from lstmtext.errors import ConfigError, TrainingDiverged, TrainingInterrupted

# distributed, language_model and render import torch (seconds): each is imported where it is
# used, so that `lstmtext train --help` shows at once.

__all__ = ["Level", "Optimizer", "Precision", "Schedule", "Task", "stop_on_signals", "train"]


DEPRECATED_TASK = (
    "lstmtext: note: `train --task classify` is deprecated and will be removed; "
    "use `lstmtext train-classifier` (the same options, less the language model's)"
)


class Task(str, Enum):
    lm = "lm"
    classify = "classify"


# The options `train --from` takes where the user gives none: a trained model wants a smaller
# step than a random one, and some dropout on a small corpus. The rate is measured
# (BENCHMARKS.md, Fine-tuning: 1e-3 against 3e-3); schedule, warm-up and dropout are not yet.
FINE_TUNING_DEFAULTS = {"lr": 1e-3, "schedule": "cosine", "warmup": 50, "dropout": 0.1}


def train(
    ctx: typer.Context,
    corpus: Annotated[
        list[str],
        typer.Argument(
            help="Text files, a directory of .txt files, a catalogue name (e.g. tinyshakespeare) or -."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            parser=output_folder,
            help="Run directory (checkpoints, metrics).",
            rich_help_panel=RUN,
        ),
    ] = Path("runs/lm"),
    level: LevelOption = Level.char,
    vocab_size: VocabSize = 8000,
    min_frequency: MinFrequency = 1,
    max_vocab: MaxVocab = None,
    lowercase: Lowercase = False,
    val: Annotated[
        list[str] | None,
        typer.Option("--val", help="Validation text (instead of --val-fraction).", rich_help_panel=DATA),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Last fraction of the corpus kept for validation.", rich_help_panel=DATA)
    ] = 0.1,
    encoding: Annotated[
        str, typer.Option(help="Text encoding of the corpus.", rich_help_panel=DATA)
    ] = "utf-8",
    errors: Annotated[
        str, typer.Option(help="Undecodable bytes: strict (error) or replace.", rich_help_panel=DATA)
    ] = "strict",
    layers: Layers = 2,
    hidden: Hidden = 512,
    embed: Embed = 128,
    dropout: Dropout = 0.2,
    embed_dropout: EmbedDropout = 0.0,
    locked_dropout: LockedDropout = False,
    weight_drop: WeightDrop = 0.0,
    tie_weights: Annotated[
        bool,
        typer.Option(
            help="Share the embedding with the output layer (needs --embed == --hidden).",
            rich_help_panel=MODEL,
        ),
    ] = False,
    softmax_cutoff: Annotated[
        int,
        typer.Option(
            help="Two-level softmax: the N most frequent tokens first, the rest behind one cluster "
            "token; trains word/BPE models with a large vocabulary faster (0: full softmax).",
            rich_help_panel=MODEL,
        ),
    ] = 0,
    seq_len: Annotated[int, typer.Option(help="Truncated-BPTT length.", rich_help_panel=OPTIM)] = 100,
    vary_seq_len: Annotated[
        bool,
        typer.Option(
            help="AWD-LSTM's variable BPTT: each window's length drawn from N(seq-len, 5) (seq-len/2 "
            "one time in 20), the rate scaled by it, so windows start at new places every epoch.",
            rich_help_panel=OPTIM,
        ),
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Streams trained in parallel.", rich_help_panel=OPTIM)] = 64,
    lr: Lr = 2e-3,
    optimizer: OptimizerOption = Optimizer.adam,
    weight_decay: WeightDecay = 0.0,
    schedule: ScheduleOption = Schedule.plateau,
    warmup: Warmup = 0,
    unfreeze: Unfreeze = 0,
    discriminative_lr: DiscriminativeLr = 1.0,
    clip: Clip = 5.0,
    ema: Ema = 0.0,
    ar: Annotated[
        float,
        typer.Option(
            "--ar",
            help="Activation regularisation: weight of the mean squared top-layer output (AWD-LSTM: 2).",
            rich_help_panel=OPTIM,
        ),
    ] = 0.0,
    tar: Annotated[
        float,
        typer.Option(
            "--tar",
            help="Temporal activation regularisation: weight of its mean squared change (AWD-LSTM: 1).",
            rich_help_panel=OPTIM,
        ),
    ] = 0.0,
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Passes over the corpus (default 1 unless --max-steps/--max-time).", rich_help_panel=RUN
        ),
    ] = None,
    max_steps: MaxSteps = None,
    max_time: MaxTime = None,
    eval_every: Annotated[
        int, typer.Option(help="Steps between evaluations and checkpoints.", rich_help_panel=RUN)
    ] = 200,
    eval_batches: Annotated[
        int | None,
        typer.Option(help="Validation batches per evaluation (default: all).", rich_help_panel=RUN),
    ] = None,
    patience: Patience = 5,
    keep_last: KeepLast = 2,
    resume: Resume = False,
    overwrite: Overwrite = False,
    random_state: RandomState = 1337,
    device: Device = "auto",
    precision: PrecisionOption = Precision.auto,
    threads: Threads = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Token-id cache of a big corpus, memory-mapped (default: .lstmtext-cache beside a "
            "single file of 256 MiB or more; giving it uses the cache for any single UTF-8 file).",
            rich_help_panel=DATA,
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Train on this many local processes (torchrun, data parallel; --batch-size is the total).",
            rich_help_panel=RUN,
        ),
    ] = 1,
    max_restarts: Annotated[
        int,
        typer.Option(
            help="With --nproc: restart the processes this often after a failure, from the last checkpoint.",
            rich_help_panel=RUN,
        ),
    ] = 0,
    # Deprecated for a release: `--task classify` and the options only it reads, hidden from the
    # help; `lstmtext train-classifier` shows them, and only the options a classifier uses.
    task: Annotated[Task, typer.Option(hidden=True)] = Task.lm,
    start_from: Annotated[
        Path | None,
        typer.Option(
            "--from",
            parser=model_folder,
            help="Fine-tune this language model (a run folder, or an embedded model: english, "
            "shakespeare) instead of starting from random weights. Its tokenizer and sizes are kept; "
            "a char or word vocabulary grows to cover the corpus. Unless given: "
            + ", ".join(f"--{option} {value}" for option, value in FINE_TUNING_DEFAULTS.items())
            + ".",
            rich_help_panel=RUN,
        ),
    ] = None,
    label_column: Annotated[str, typer.Option(hidden=True)] = "label",
    text_column: Annotated[str, typer.Option(hidden=True)] = "text",
    max_tokens: Annotated[int, typer.Option(hidden=True)] = 512,
    class_weights: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Train a language model on CORPUS and save it in --out.

    Example: [bold]lstmtext train tinyshakespeare --max-time 30 --out runs/shakespeare[/]

    Several processes: [bold]--nproc N[/], or [bold]torchrun --nproc-per-node N -m lstmtext train ...[/]

    A classifier on labelled data: [bold]lstmtext train-classifier[/].
    """
    from lstmtext import distributed
    from lstmtext.cli.render import TrainingDisplay, best_text, summary_line
    from lstmtext.lm.api import train_language_model

    if errors not in ("strict", "replace", "ignore"):
        raise ConfigError(f"--errors must be strict, replace or ignore, not {errors!r}")
    if nproc < 1 or max_restarts < 0:
        raise ConfigError(f"--nproc must be >= 1 and --max-restarts >= 0, not {nproc} and {max_restarts}")
    several = nproc > 1 or max_restarts > 0 or distributed.from_environment().enabled  # or under torchrun
    if task is Task.classify and (resume or several):
        raise ConfigError(
            "--task classify trains in one process from the start: no --resume, --nproc or torchrun"
        )
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out, --overwrite replaces it: not both")
    check_max_time(max_time)
    if nproc > 1 or max_restarts > 0:
        args = command_line(ctx, leave_out={"nproc", "max_restarts"})
        raise typer.Exit(run_under_torchrun(nproc, max_restarts, args))
    rank = distributed.from_environment()
    if not resume and rank.restart_count > 0 and (out / "checkpoints" / "last").exists():
        # torchrun restarted us after a failure: carry on from the last checkpoint, not from scratch.
        resume = True
        if rank.is_main:
            typer.echo(
                f"lstmtext: restart {rank.restart_count}: resuming from {out / 'checkpoints' / 'last'}",
                err=True,
            )
    # The options reach the configs by name (cli/configs.py), as train-classifier's do.
    params, shape_fields = dict(ctx.params), typed_fields(ctx)
    if start_from is not None and task is Task.lm:
        # Fine-tuning's own defaults for what the user left out (lstmtext.lm.transfer).
        for option, value in FINE_TUNING_DEFAULTS.items():
            source = ctx.get_parameter_source(option)
            if source is None or source.name != "COMMANDLINE":
                params[option] = value
        shape_fields.add("dropout")
    tokenizer_config, shape, train_config = training_configs(params)
    if task is Task.classify and (ar > 0 or tar > 0):
        raise typer.BadParameter(
            "AR and TAR regularise language-model training only", param_hint="--ar/--tar"
        )
    if task is Task.classify:  # deprecated: labelled data -> classifier head on the same core
        from lstmtext.cli.train_classifier import train_classifier_command

        options = classifier_options(ctx.params)
        train_classifier_command(
            corpus, tokenizer_config, shape, train_config, out, options=options, overwrite=overwrite
        )
        # Last, after a run that worked: an error stays the one line on stderr it always was.
        typer.echo(DEPRECATED_TASK, err=True)
        return
    unit = "char" if level is Level.char else "token"
    display = TrainingDisplay(unit=unit) if rank.is_main else None  # rank 0 alone reports
    with stop_on_signals() as (stop, received), display or contextlib.nullcontext():
        result = train_language_model(
            corpus,
            tokenizer_config,
            shape,
            train_config,
            out,
            val_sources=val,
            resume=resume,
            overwrite=overwrite,
            shape_fields=shape_fields,
            start_from=start_from,
            encoding=encoding,
            errors=errors,
            on_event=display,
            stop_event=stop,
            distributed=rank,
            cache_dir=cache_dir,
        )
    if result.stop_reason == "interrupted":
        signum = received[0] if received else signal.SIGINT
        if not rank.is_main:
            raise typer.Exit(128 + signum)
        raise TrainingInterrupted(
            f"interrupted at step {result.steps}; checkpoint saved in {out}; continue with --resume", signum
        )
    if not rank.is_main:
        raise typer.Exit(1 if result.stop_reason == "diverged" else 0)
    if result.stop_reason == "diverged":
        last = out / "checkpoints" / "last"
        kept = f"the last good checkpoint is in {last}" if last.exists() else "no checkpoint was saved"
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite at step {result.steps} even after "
            f"rolling back; {kept}; try a lower --lr or --clip"
        )
    best = best_text(result.best_val_loss, result.best_step)
    typer.echo(
        f"{summary_line(result)}; best validation loss {best}; model in {out}",
        err=True,
    )
