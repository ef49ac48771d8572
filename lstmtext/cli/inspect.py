"""`lstmtext inspect`: the gates of a trained model, token by token, for one text."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from lstmtext.cli import inspect_render as render
from lstmtext.cli.options import model_folder
from lstmtext.core.inspection import (
    GateSaturation,
    Inspection,
    TokenPrediction,
    UnitMatch,
    find_units,
    gate_saturation,
    inspect_text,
    most_active_unit,
    pattern_indicator,
    position_index,
    top_predictions,
)
from lstmtext.data.reading import read_prefix
from lstmtext.errors import ConfigError, CorpusError
from lstmtext.runs.checkpoint import load_checkpoint

SHOW = "What to show"
# The gates of every token are kept (2 x 6 x 512 floats a token for the Shakespeare model) and
# drawn: 10,000 tokens take 0.75 GB and about 130 s of CPU on a 2-core Zen 4 (2,000: 0.36 GB,
# 19 s); more is refused rather than left running for many minutes.
MAX_INSPECTED_TOKENS = 10_000
# Only the text inspected is read: no token of any tokenizer here is longer than this, on average.
BYTES_PER_TOKEN = 64
EXPORT = "Export"


class Quantity(str, Enum):
    cell = "cell"
    hidden = "hidden"
    forget = "forget"
    input = "input"
    candidate = "candidate"
    output = "output"


def inspect(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", parser=model_folder, help="Checkpoint directory.", show_default=False),
    ],
    file: Annotated[
        str | None, typer.Argument(help="Text file to inspect, or - for stdin.", show_default=False)
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", "-t", help="Text to inspect (instead of FILE).")
    ] = None,
    layer: Annotated[
        int, typer.Option(help="Layer, 0 = next to the embedding, -1 = the top.", rich_help_panel=SHOW)
    ] = -1,
    unit: Annotated[
        int | None,
        typer.Option(
            help="Unit to colour the text by (default: the best --find match, else the most varying unit).",
            rich_help_panel=SHOW,
            show_default=False,
        ),
    ] = None,
    quantity: Annotated[
        Quantity, typer.Option(help="Which value of the unit.", rich_help_panel=SHOW)
    ] = Quantity.cell,
    position: Annotated[
        int,
        typer.Option(help="Token whose next-token predictions to list; -1 = the last.", rich_help_panel=SHOW),
    ] = -1,
    find: Annotated[
        str | None,
        typer.Option(
            "--find",
            help="Regex over the text: rank units by correlation with it.",
            rich_help_panel=SHOW,
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int, typer.Option(min=1, help="How many predictions / found units to list.", rich_help_panel=SHOW)
    ] = 5,
    saturation: Annotated[
        bool, typer.Option("--saturation", help="Gate saturation statistics per layer.", rich_help_panel=SHOW)
    ] = False,
    max_tokens: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_INSPECTED_TOKENS,
            help="Inspect at most this many tokens of the text (only its beginning is read).",
            rich_help_panel=SHOW,
        ),
    ] = 2000,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a standalone HTML page (pick any unit).",
            rich_help_panel=EXPORT,
            show_default=False,
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            "--png",
            help="Write a PNG: coloured text + units x tokens heatmap.",
            rich_help_panel=EXPORT,
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout.", rich_help_panel=EXPORT)
    ] = False,
) -> None:
    """Cell state, hidden state and gates of every token of a text, as the model computes them.

    The text is coloured token by token by one unit (blue low, white middle, red high), as in
    Karpathy, Johnson and Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks".
    """
    if (text is None) == (file is None):
        raise ConfigError(
            "give the text to inspect either as FILE or with --text, not both"
            if text
            else "no text to inspect: give FILE (or - for stdin) or --text"
        )
    more = False
    if text is not None:
        source = text
    else:  # its beginning only: a 5 MB file (or /dev/zero) is never read whole
        source, more = read_prefix(file, max_tokens * BYTES_PER_TOKEN, error=CorpusError)  # type: ignore[arg-type]
        if not source.strip() and not more:
            raise CorpusError(f"{'<stdin>' if file == '-' else file}: empty, nothing to inspect")
    checkpoint = load_checkpoint(model)
    inspection = inspect_text(checkpoint.model, checkpoint.tokenizer, source, max_tokens=max_tokens)
    if more or inspection.total_tokens > len(inspection):
        typer.echo(f"lstmtext: note: inspecting the first {max_tokens} tokens only (--max-tokens)", err=True)

    layer = inspection.layer_index(layer)
    chosen_quantity = quantity.value
    matches = find_units(inspection, find, top=top) if find is not None else []
    if unit is None and matches:
        layer, unit, chosen_quantity = matches[0].layer, matches[0].unit, matches[0].quantity
    if unit is None:
        unit = most_active_unit(inspection, layer, chosen_quantity)
    selected = render.unit_series(inspection, layer, unit, chosen_quantity)
    saturations = gate_saturation(inspection) if saturation else []
    predictions = (
        top_predictions(inspection, checkpoint.tokenizer, position, top)
        if inspection.logits is not None
        else []
    )
    at = position_index(inspection, position)
    actual = inspection.pieces[at + 1] if at + 1 < len(inspection) else None

    indicator = (
        [render.indicator_series(pattern_indicator(inspection, find), find)] if find is not None else []
    )
    if html is not None:
        series = render.match_series(inspection, matches) + render.layer_series(
            inspection, layer, chosen_quantity
        )
        keys = [s.key for s in series]
        if selected.key not in keys:
            series, keys = [selected, *series], [selected.key, *keys]
        subtitle = f"model {model}, {len(inspection)} tokens"
        render.write_html(html, inspection, series, selected=keys.index(selected.key), subtitle=subtitle)
        typer.echo(f"wrote {html}", err=True)
    if png is not None:
        rows = (
            render.match_series(inspection, matches)
            if matches
            else _busiest(inspection, layer, chosen_quantity)
        )
        render.write_png(png, inspection, selected, indicator + rows, saturations or None)
        typer.echo(f"wrote {png}", err=True)

    if as_json:
        result = _as_dict(
            inspection, layer, unit, chosen_quantity, selected, predictions, at, matches, saturations, find
        )
        typer.echo(json.dumps(result))
        return
    console = Console()
    console.print(render.colour_legend(selected))
    console.print(render.coloured_text(inspection, selected))
    if predictions:
        console.print(render.predictions_table(predictions, at, inspection.pieces[at], actual))
    if matches:
        console.print(render.matches_table(matches, find))  # type: ignore[arg-type]
    if saturations:
        console.print(render.saturation_table(saturations))


def _busiest(inspection: Inspection, layer: int, quantity: str) -> list[render.Series]:
    """The layer's units, most varying first, as many as a heatmap shows."""
    spread = inspection.values(layer, quantity).var(dim=0)
    order = spread.argsort(descending=True)[: render.HEATMAP_MAX_ROWS].tolist()
    return [render.unit_series(inspection, layer, u, quantity) for u in order]


def _as_dict(
    inspection: Inspection,
    layer: int,
    unit: int,
    quantity: str,
    selected: render.Series,
    predictions: list[TokenPrediction],
    at: int,
    matches: list[UnitMatch],
    saturations: list[GateSaturation],
    find: str | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tokens": inspection.pieces,
        "ids": inspection.ids,
        "layer": layer,
        "unit": unit,
        "quantity": quantity,
        "values": [round(v, 6) for v in selected.values.tolist()],
    }
    if predictions:
        result["position"] = at
        result["predictions"] = [
            {"token": p.token, "id": p.token_id, "probability": round(p.probability, 6)} for p in predictions
        ]
    if find is not None:
        result["find"] = {
            "pattern": find,
            "units": [
                {
                    "layer": m.layer,
                    "unit": m.unit,
                    "quantity": m.quantity,
                    "correlation": round(m.correlation, 6),
                }
                for m in matches
            ],
        }
    if saturations:
        result["saturation"] = [s.summary() for s in saturations]
    return result
