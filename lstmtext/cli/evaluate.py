"""`lstmtext evaluate`: metrics of a trained model on held-out data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lstmtext.cli.options import model_folder
from lstmtext.errors import ConfigError
from lstmtext.lm.api import evaluate_language_model
from lstmtext.lm.dynamic_eval import DynamicEvaluation
from lstmtext.runs.checkpoint import read_config


def evaluate(
    data: Annotated[
        list[str], typer.Argument(help="Held-out text files, a directory, a catalogue name or -.")
    ],
    model: Annotated[
        list[Path],
        typer.Option(
            "--model",
            "-m",
            parser=model_folder,
            help="Checkpoint directory. Given more than once, their ensemble: the mean of their "
            "probabilities (of the next token, or of the classes); all of one task and tokenizer.",
        ),
    ],
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Parallel streams (default 16; 1 with --dynamic-lr).")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option(min=1, help="Tokens per step (default 256; 20 with --dynamic-lr).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    label_column: Annotated[
        str, typer.Option(help="Classifier: label column (CSV/TSV header) or JSON key.")
    ] = "label",
    text_column: Annotated[
        str, typer.Option(help="Classifier: text column (CSV/TSV header) or JSON key.")
    ] = "text",
    dynamic_lr: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Dynamic evaluation: after scoring each segment, one SGD step of this rate on it, "
            "so the model adapts to the text as it reads it (0: off).",
        ),
    ] = 0.0,
    dynamic_decay: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.999,
            help="Dynamic evaluation: per step, the fraction of the way back to the trained weights.",
        ),
    ] = 0.0,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            help="Classifier: write a reliability diagram (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Loss, perplexity, bits per token and bits per UTF-8 byte of a language model on DATA.

    --model given more than once: the loss of the models' ensemble, the mean of their
    next-token probabilities, each model reading the text with its own state.

    With --dynamic-lr, dynamic evaluation: each segment is scored first, then learnt from,
    so the model adapts to the text it reads; the trained weights on disk are not changed.

    For a classifier, DATA is labelled (TSV, CSV, JSONL or a folder per label): accuracy,
    macro-F1 and the confusion matrix, and how well calibrated its probabilities are: the
    expected calibration error over 15 equal-width confidence bins and the reliability table.
    """
    tasks = [read_config(directory).model.task for directory in model]
    if len(set(tasks)) > 1:
        language_model = model[tasks.index("lm")]
        raise ConfigError(
            f"an ensemble is of classifiers or of language models, not both; {language_model} "
            "holds a language model"
        )
    if tasks[0] == "classify":
        if dynamic_lr:
            raise ConfigError("--dynamic-lr adapts a language model; this is a classifier")
        from lstmtext.classifier.predict import evaluate_classifier
        from lstmtext.cli.classify import render_metrics
        from lstmtext.data.labelled import Columns

        columns = Columns(label=label_column, text=text_column)
        metrics = evaluate_classifier(model, data, columns=columns, device=device)
        render_metrics(metrics, as_json)
        if png is not None and metrics.reliability is not None:
            from lstmtext.cli.reliability_render import write_png

            write_png(png, metrics.reliability, title=", ".join(str(m) for m in model))
            typer.echo(f"wrote {png}", err=True)
        return
    if png is not None:
        raise ConfigError("--png draws a classifier's reliability diagram; this is a language model")
    dynamic = DynamicEvaluation(dynamic_lr, dynamic_decay) if dynamic_lr else None
    if dynamic is None and dynamic_decay:
        raise ConfigError("--dynamic-decay needs --dynamic-lr")
    lm_metrics = evaluate_language_model(
        model,
        data,
        batch_size=batch_size,
        seq_len=seq_len,
        device=device,
        dynamic=dynamic,
    )
    if as_json:
        typer.echo(json.dumps(lm_metrics.__dict__))
        return
    typer.echo(
        f"loss {lm_metrics.loss:.4f} nats/token  perplexity {lm_metrics.perplexity:.2f}  "
        f"bits/token {lm_metrics.bits_per_token:.4f}  bits/byte {lm_metrics.bits_per_byte:.4f}  "
        f"({lm_metrics.tokens} tokens, {lm_metrics.bytes} bytes)"
    )
