"""Showing how well calibrated a classifier is: the reliability table and diagram."""

from __future__ import annotations

import io
import math
from pathlib import Path

from rich.table import Table

from lstmtext.classifier.calibration import Reliability
from lstmtext.errors import LstmTextError
from lstmtext.files import write_output


def reliability_table(reliability: Reliability) -> Table:
    """The bins that hold any text: their range, count, mean confidence and accuracy."""
    table = Table(
        title=f"reliability ({len(reliability.bins)} confidence bins; empty ones left out)",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for column in ("confidence bin", "texts", "mean confidence", "accuracy", "gap"):
        table.add_column(column, justify="right")
    for b in reliability.bins:
        if b.count:
            table.add_row(
                f"{b.low:.3f}-{b.high:.3f}",
                str(b.count),
                f"{b.confidence:.3f}",
                f"{b.accuracy:.3f}",
                f"{b.accuracy - b.confidence:+.3f}",
            )
    return table


def write_png(path: Path, reliability: Reliability, title: str = "") -> None:
    """A reliability diagram: accuracy per confidence bin against the diagonal of perfect
    calibration, with the share of texts per bin below it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise LstmTextError(
            "--png needs matplotlib: pip install 'lstmtext[plot]' (or pip install matplotlib)"
        ) from None
    figure = Figure(figsize=(5, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    width = 1 / len(reliability.bins)
    filled = [b for b in reliability.bins if b.count]
    top.bar(
        [b.low for b in filled],
        [b.accuracy for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        color="#64b5f6",
        label="accuracy",
    )
    top.bar(
        [b.low for b in filled],
        [b.confidence - b.accuracy for b in filled],
        bottom=[b.accuracy for b in filled],
        width=width,
        align="edge",
        color="#ef5350",
        alpha=0.4,
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    ece = "-" if math.isnan(reliability.ece) else f"{reliability.ece:.4f}"
    top.set_title(f"{title + ': ' if title else ''}ECE {ece} ({reliability.count} texts)", fontsize=10)
    bottom.bar(
        [b.low for b in reliability.bins],
        [b.count / max(reliability.count, 1) for b in reliability.bins],
        width=width,
        align="edge",
        edgecolor="black",
        color="#9e9e9e",
    )
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("share of texts")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_output(Path(path), buffer.getvalue())
