"""`lstmtext classify`, and the classification side of `lstmtext train --task classify`."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lstmtext.classifier_train import ClassifierOptions, ClassifierResult, train_classifier
from lstmtext.classify import ClassificationMetrics, load_predictor
from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.errors import TrainingDiverged, TrainingInterrupted
from lstmtext.labelled import read_documents
from lstmtext.language_model import ModelShape
from lstmtext.pretrained import default_classifier_dir
from lstmtext.train import TrainEvent


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


def classify(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Texts to classify: files (one text each), - for stdin, directories of .txt, or TSV."
        ),
    ],
    model: Annotated[
        list[Path] | None,
        typer.Option(
            "--model",
            "-m",
            help="Classifier checkpoint (default: the embedded sentiment model). Given more than "
            "once: an ensemble, labelling by the mean of their probabilities.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text on stdout.")] = False,
    lines: Annotated[
        bool, typer.Option("--lines", help="Each line of a file (or of stdin) is a text of its own.")
    ] = False,
    batch_tokens: Annotated[
        int, typer.Option(min=1, help="Padded tokens per batch (texts are batched by length).")
    ] = 32768,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        Precision, typer.Option(help="auto uses bf16 where the hardware accelerates it.")
    ] = Precision.auto,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: one per core).")] = None,
) -> None:
    """Label each text with the classifier's most probable class and its probability.

    Example: [bold]lstmtext classify review.txt[/]   [bold]echo "Loved it." | lstmtext classify - --json[/]
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    directories = model if model else [default_classifier_dir()]
    predictor = load_predictor(
        directories, device=device, precision=precision.value, max_batch_tokens=batch_tokens
    )
    documents = list(read_documents(files, lines=lines))
    predictions = predictor.predict([d.text for d in documents])
    if as_json:
        for document, prediction in zip(documents, predictions, strict=True):
            record = {
                "input": document.name,
                "label": prediction.label,
                "probability": round(prediction.probability, 6),
                "probabilities": {k: round(v, 6) for k, v in prediction.probabilities.items()},
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    table = Table(box=None, header_style="bold")
    table.add_column("input", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for document, prediction in zip(documents, predictions, strict=True):
        table.add_row(document.name, prediction.label, f"{prediction.probability:.3f}")
    Console(soft_wrap=False).print(table)


# ---- training, called by `lstmtext train --task classify`


def render_event(event: TrainEvent) -> None:
    """One line per evaluation on stderr (a live panel adds little to a run of a few hundred steps)."""
    if event.kind in ("warning", "stop"):
        print(
            event.message if event.kind == "stop" else f"note: {event.message}", file=sys.stderr, flush=True
        )
        return
    if event.kind != "eval":
        return
    total = f"/{event.total_steps}" if event.total_steps else ""
    loss = "-" if event.loss is None else f"{event.loss:.4f}"
    val = "-" if event.val_loss is None else f"{event.val_loss:.4f}"
    print(
        f"step {event.step}{total}  loss {loss}  val_loss {val}  {event.message}  "
        f"elapsed {event.elapsed:.0f}s",
        file=sys.stderr,
        flush=True,
    )


def train_classifier_command(
    sources: Sequence[str],
    tokenizer_config: TokenizerConfig,
    shape: ModelShape,
    train_config: TrainConfig,
    out: Path,
    *,
    options: ClassifierOptions,
) -> ClassifierResult:
    """Train, report one line per evaluation, and turn Ctrl-C into a clean stop with the best model kept."""
    from lstmtext.cli.train import stop_on_signals

    with stop_on_signals() as (stop, received):
        result = train_classifier(
            sources,
            tokenizer_config,
            shape,
            train_config,
            out,
            options=options,
            on_event=render_event,
            stop_event=stop,
        )
    if result.stop_reason == "interrupted":
        raise TrainingInterrupted(
            f"interrupted at step {result.steps}; the best classifier so far is in {out}",
            received[0] if received else signal.SIGINT,
        )
    best = (
        "-"
        if result.best_val_accuracy is None
        else f"{result.best_val_accuracy:.4f} at step {result.best_step}"
    )
    if result.stop_reason == "diverged":
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite at step {result.steps}; "
            f"the best classifier so far (validation accuracy {best}) is in {out}; try a lower --lr or --clip"
        )
    typer.echo(
        f"{result.stop_reason}: {result.steps} steps in {result.elapsed / 60:.1f} min; "
        f"best validation accuracy {best}; classifier ({', '.join(result.labels)}) in {out}",
        err=True,
    )
    return result


def render_metrics(metrics: ClassificationMetrics, as_json: bool) -> None:
    """`lstmtext evaluate` on a classifier: accuracy, macro-F1 and the confusion matrix."""
    if as_json:
        typer.echo(json.dumps(metrics.to_dict()))
        return
    console = Console(soft_wrap=False)
    console.print(
        f"accuracy {metrics.accuracy:.4f}  macro-F1 {metrics.macro_f1:.4f}  ({metrics.count} texts)"
    )
    table = Table(title="confusion matrix (rows: true, columns: predicted)", box=None, header_style="bold")
    table.add_column("true \\ predicted")
    for label in metrics.labels:
        table.add_column(label, justify="right")
    table.add_column("recall", justify="right")
    per_class = metrics.per_class()
    for label, row in zip(metrics.labels, metrics.confusion, strict=True):
        table.add_row(label, *map(str, row), f"{per_class[label]['recall']:.3f}")
    table.add_row("precision", *(f"{per_class[label]['precision']:.3f}" for label in metrics.labels), "")
    console.print(table)
