"""`lstmtext calibrate`: fit a classifier's temperature on labelled validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lstmtext.classifier.calibrate import at_search_limit
from lstmtext.classifier.calibrate import calibrate as fit_and_store
from lstmtext.cli.options import model_folder
from lstmtext.data.labelled import Columns


def calibrate(
    data: Annotated[
        list[str],
        typer.Argument(help="Labelled validation data (TSV, CSV, JSONL or a folder per label)."),
    ],
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            "-m",
            parser=model_folder,
            help="Classifier checkpoint to calibrate.",
            show_default=False,
        ),
    ],
    max_per_file: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Use a fixed random sample of at most this many texts of each file.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of that sample.")] = 0,
    label_column: Annotated[str, typer.Option(help="Label column (CSV/TSV header) or JSON key.")] = "label",
    text_column: Annotated[str, typer.Option(help="Text column (CSV/TSV header) or JSON key.")] = "text",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Fit a classifier's temperature on held-out labelled DATA and store it in its config.json.

    The weights are not touched. Temperature scaling (Guo et al. 2017): the logits are divided
    by T before the softmax, T chosen to minimise the negative log-likelihood of DATA. Labels
    and accuracy are unchanged.
    DATA must be held out: neither the training data nor the test data.

    Example: [bold]lstmtext calibrate -m runs/sentiment sst2/dev.tsv imdb/train.tsv --max-per-file 1000[/]
    """
    result = fit_and_store(
        model,
        data,
        columns=Columns(label=label_column, text=text_column),
        max_per_file=max_per_file,
        seed=seed,
        device=device,
    )
    if at_search_limit(result.temperature):
        typer.echo(
            f"lstmtext: note: the temperature is at the limit of its search: on this data the model's "
            f"probabilities carry almost no information ({result.count} texts, {result.errors} wrong)",
            err=True,
        )
    typer.echo(
        f"temperature {result.temperature:.4f} on {result.count} texts: NLL {result.nll_before:.4f} -> "
        f"{result.nll_after:.4f}, ECE {result.ece_before:.4f} -> {result.ece_after:.4f}; "
        f"written to {model / 'config.json'}"
    )
