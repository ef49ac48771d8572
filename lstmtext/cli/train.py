"""`lstmtext train`: options -> configs -> library -> rendered events."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from lstmtext.cli.render import TrainingDisplay
from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.errors import ConfigError, TrainingInterrupted
from lstmtext.language_model import ModelShape, train_language_model

MODEL = "Model"
DATA = "Data"
OPTIM = "Optimisation"
RUN = "Run"


class Level(str, Enum):
    char = "char"
    word = "word"
    bpe = "bpe"


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    plateau = "plateau"
    cosine = "cosine"
    constant = "constant"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[tuple[threading.Event, list[int]]]:
    """SIGINT/SIGTERM set an event the loop polls between steps, so it can save and return."""
    stop = threading.Event()
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train(
    corpus: Annotated[
        list[str],
        typer.Argument(
            help="Text files, a directory of .txt files, a catalogue name (e.g. tinyshakespeare) or -."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory (checkpoints, metrics).", rich_help_panel=RUN)
    ] = Path("runs/lm"),
    level: Annotated[Level, typer.Option(help="Token level.", rich_help_panel=DATA)] = Level.char,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.", rich_help_panel=DATA)] = 8000,
    min_frequency: Annotated[
        int, typer.Option(help="Word level: rarer words become <unk>.", rich_help_panel=DATA)
    ] = 1,
    max_vocab: Annotated[
        int | None, typer.Option(help="Word level: keep only the most frequent words.", rich_help_panel=DATA)
    ] = None,
    lowercase: Annotated[bool, typer.Option(help="Word level: fold case.", rich_help_panel=DATA)] = False,
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
    layers: Annotated[int, typer.Option(help="Stacked LSTM layers.", rich_help_panel=MODEL)] = 2,
    hidden: Annotated[int, typer.Option(help="LSTM hidden size.", rich_help_panel=MODEL)] = 512,
    embed: Annotated[int, typer.Option(help="Embedding size.", rich_help_panel=MODEL)] = 128,
    dropout: Annotated[
        float, typer.Option(help="Dropout between layers and on the output.", rich_help_panel=MODEL)
    ] = 0.2,
    embed_dropout: Annotated[float, typer.Option(help="Dropout on embeddings.", rich_help_panel=MODEL)] = 0.0,
    tie_weights: Annotated[
        bool,
        typer.Option(
            help="Share the embedding with the output layer (needs --embed == --hidden).",
            rich_help_panel=MODEL,
        ),
    ] = False,
    seq_len: Annotated[int, typer.Option(help="Truncated-BPTT length.", rich_help_panel=OPTIM)] = 100,
    batch_size: Annotated[int, typer.Option(help="Streams trained in parallel.", rich_help_panel=OPTIM)] = 64,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=OPTIM)] = 2e-3,
    optimizer: Annotated[Optimizer, typer.Option(help="Optimizer.", rich_help_panel=OPTIM)] = Optimizer.adam,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.", rich_help_panel=OPTIM)] = 0.0,
    schedule: Annotated[
        Schedule, typer.Option(help="Learning-rate schedule.", rich_help_panel=OPTIM)
    ] = Schedule.plateau,
    warmup: Annotated[int, typer.Option(help="Warm-up steps.", rich_help_panel=OPTIM)] = 0,
    clip: Annotated[
        float, typer.Option(help="Gradient-norm clipping (0: off).", rich_help_panel=OPTIM)
    ] = 5.0,
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Passes over the corpus (default 1 unless --max-steps/--max-time).", rich_help_panel=RUN
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps.", rich_help_panel=RUN)
    ] = None,
    max_time: Annotated[
        float | None, typer.Option(help="Stop after this many minutes.", rich_help_panel=RUN)
    ] = None,
    eval_every: Annotated[
        int, typer.Option(help="Steps between evaluations and checkpoints.", rich_help_panel=RUN)
    ] = 200,
    eval_batches: Annotated[
        int | None,
        typer.Option(help="Validation batches per evaluation (default: all).", rich_help_panel=RUN),
    ] = None,
    patience: Annotated[
        int,
        typer.Option(help="Evaluations without improvement before stopping (0: never).", rich_help_panel=RUN),
    ] = 5,
    keep_last: Annotated[
        int, typer.Option(help="Step checkpoints kept besides the best and the last.", rich_help_panel=RUN)
    ] = 2,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint.", rich_help_panel=RUN)
    ] = False,
    random_state: Annotated[
        int, typer.Option(help="Random seed for weights, dropout and sampling.", rich_help_panel=RUN)
    ] = 1337,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", rich_help_panel=RUN)] = "auto",
    precision: Annotated[
        Precision,
        typer.Option(help="auto picks bf16 where the hardware accelerates it.", rich_help_panel=RUN),
    ] = Precision.fp32,
    threads: Annotated[
        int | None,
        typer.Option(help="CPU threads (default: torch's choice, one per core).", rich_help_panel=RUN),
    ] = None,
) -> None:
    """Train a language model on CORPUS and save it in --out.

    Example: [bold]lstmtext train tinyshakespeare --max-time 30 --out runs/shakespeare[/]
    """
    if errors not in ("strict", "replace", "ignore"):
        raise ConfigError(f"--errors must be strict, replace or ignore, not {errors!r}")
    tokenizer_config = TokenizerConfig(
        level=level.value,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        max_vocab=max_vocab,
        lowercase=lowercase,
    )
    shape = ModelShape(
        embedding_dim=embed,
        hidden_size=hidden,
        num_layers=layers,
        dropout=dropout,
        embedding_dropout=embed_dropout,
        tie_weights=tie_weights,
    )
    shape.model_config(vocab_size=1)  # validate sizes before reading any data
    train_config = TrainConfig(
        seq_len=seq_len,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer.value,
        weight_decay=weight_decay,
        epochs=epochs,
        max_steps=max_steps,
        max_time=max_time * 60 if max_time is not None else None,
        clip=clip,
        val_fraction=val_fraction,
        eval_every=eval_every,
        eval_batches=eval_batches,
        patience=patience or None,
        lr_schedule=schedule.value,
        warmup_steps=warmup,
        keep_last=keep_last,
        random_state=random_state,
        device=device,
        precision=precision.value,
        threads=threads,
    )
    display = TrainingDisplay(unit="char" if level is Level.char else "token")
    with stop_on_signals() as (stop, received), display:
        result = train_language_model(
            corpus,
            tokenizer_config,
            shape,
            train_config,
            out,
            val_sources=val,
            resume=resume,
            encoding=encoding,
            errors=errors,
            on_event=display,
            stop_event=stop,
        )
    if result.stop_reason == "interrupted":
        signum = received[0] if received else signal.SIGINT
        raise TrainingInterrupted(
            f"interrupted at step {result.steps}; checkpoint saved in {out}; continue with --resume", signum
        )
    best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f} at step {result.best_step}"
    typer.echo(
        f"{result.stop_reason}: {result.steps} steps in {result.elapsed / 60:.1f} min; "
        f"best validation loss {best}; model in {out}",
        err=True,
    )
    if result.stop_reason == "diverged":
        raise typer.Exit(1)
