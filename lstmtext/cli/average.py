"""`lstmtext average`: one checkpoint from the mean of several of the same model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmtext.cli.options import output_folder
from lstmtext.runs.average import write_average


def average(
    models: Annotated[
        list[Path],
        typer.Argument(help="Checkpoint folders of one model, e.g. a run and its checkpoints/step-N."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=output_folder, help="New checkpoint folder for the average.")
    ],
) -> None:
    """Average the weights of checkpoints of one model (e.g. the best and the last steps of a run)."""
    averaged = write_average(out, models)
    typer.echo(f"averaged {len(models)} checkpoints into {averaged.path}", err=True)
