"""`lstmtext export`: a trained model as one ONNX or torch.export file, runnable without lstmtext."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmtext.cli.options import model_folder, output_folder
from lstmtext.runs.export import FORMATS, QUANTIZATIONS, ExportOptions, export_model


def export(
    out: Annotated[
        Path,
        typer.Argument(
            parser=output_folder, help="Output folder: model.onnx or model.pt2, tokenizer.json, export.json."
        ),
    ],
    model: Annotated[
        Path,
        typer.Option("--model", "-m", parser=model_folder, help="Checkpoint directory (a run or a model)."),
    ],
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="onnx (for onnxruntime) or pt2 (torch.export).",
            autocompletion=lambda: FORMATS,
        ),
    ] = "onnx",
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: dynamic int8 weights for faster CPU inference (onnx only).",
            autocompletion=lambda: QUANTIZATIONS,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace the files of a folder that holds another export or other files."),
    ] = False,
) -> None:
    """Export the whole step of a model (embedding, LSTM with its state, head) into OUT.

    A language model takes ids (B, T) and the state hidden, cell (L, B, H) and returns
    logits (B, T, V) and the next state; a classifier takes ids (B, T) and lengths (B,) and
    returns class logits (B, classes). export.json describes both; see docs/export.md for
    sampling with onnxruntime alone.

    Example: [bold]lstmtext export --model runs/shakespeare --format onnx exported/[/]
    """
    # Checks the values before any work.
    options = ExportOptions(format=file_format, quantize=quantize, overwrite=overwrite)
    result = export_model(model, out, options)
    typer.echo(f"exported {result.info['task']} to {result.model_path}", err=True)
    typer.echo(str(result.model_path))
