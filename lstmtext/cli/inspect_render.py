"""Showing an Inspection: rich text and tables for the terminal, a standalone HTML page, a PNG.

Everything here draws what lstmtext.core.inspection computed; nothing here computes model values.
A `Series` is one row of values over the tokens (one unit's activations, or a pattern's
indicator) with the range its colour scale spans.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.table import Table
from rich.text import Text
from torch import Tensor

from lstmtext.core.inspection import (
    SIGMOID_GATES,
    GateSaturation,
    Inspection,
    TokenPrediction,
    UnitMatch,
    blue_white_red,
    value_range,
)
from lstmtext.errors import LstmTextError
from lstmtext.files import write_output

NEWLINE_MARK = "\u21b5"  # shown where a token is a line break, so its colour is visible
HEATMAP_MAX_ROWS = 64
PNG_TEXT_COLUMNS = 100
PNG_TEXT_MAX_LINES = 48


@dataclass(frozen=True)
class Series:
    label: str
    values: Tensor  # (T,)
    low: float
    high: float
    key: tuple[int, int, str] | None = None  # (layer, unit, quantity) when the series is a unit


def unit_series(inspection: Inspection, layer: int, unit: int, quantity: str) -> Series:
    values = inspection.unit(layer, unit, quantity)
    low, high = value_range(quantity, values)
    layer = inspection.layer_index(layer)
    return Series(f"layer {layer} unit {unit} {quantity}", values, low, high, (layer, unit, quantity))


def layer_series(inspection: Inspection, layer: int, quantity: str) -> list[Series]:
    return [unit_series(inspection, layer, unit, quantity) for unit in range(inspection.hidden_size)]


def match_series(inspection: Inspection, matches: list[UnitMatch]) -> list[Series]:
    series = []
    for match in matches:
        one = unit_series(inspection, match.layer, match.unit, match.quantity)
        series.append(
            Series(f"{one.label} (r = {match.correlation:+.2f})", one.values, one.low, one.high, one.key)
        )
    return series


def indicator_series(indicator: Tensor, pattern: str) -> Series:
    return Series(f"pattern {pattern}", indicator, 0.0, 1.0)


# ---- terminal


def _style(series: Series, k: int) -> str:
    r, g, b = blue_white_red(float(series.values[k]), series.low, series.high)
    return f"black on rgb({r},{g},{b})"


def coloured_text(inspection: Inspection, series: Series) -> Text:
    """The text, each token's background coloured by the series' value at that token."""
    text = Text()
    for k, piece in enumerate(inspection.pieces):
        style = _style(series, k)
        lines = piece.split("\n")
        for i, line in enumerate(lines):
            if line:
                text.append(line, style=style)
            if i < len(lines) - 1:
                text.append(NEWLINE_MARK, style=style)
                text.append("\n")
    return text


def colour_legend(series: Series) -> Text:
    legend = Text(f"{series.label}:  ")
    for value, label in (
        (series.low, f"{series.low:+.2f}"),
        ((series.low + series.high) / 2, ""),
        (series.high, f"{series.high:+.2f}"),
    ):
        r, g, b = blue_white_red(value, series.low, series.high)
        legend.append(f" {label or 'mid'} ", style=f"black on rgb({r},{g},{b})")
        legend.append(" ")
    return legend


def _show_token(token: str) -> str:
    return repr(token)[1:-1] if token and token.isprintable() and token.strip() == token else repr(token)


def predictions_table(
    predictions: list[TokenPrediction], position: int, context: str, actual: str | None
) -> Table:
    title = f"next token after position {position} ({_show_token(context)})"
    if actual is not None:
        title += f"; the text has {_show_token(actual)}"
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("rank", justify="right")
    table.add_column("token")
    table.add_column("probability", justify="right")
    for rank, prediction in enumerate(predictions, start=1):
        table.add_row(str(rank), _show_token(prediction.token), f"{prediction.probability:.4f}")
    return table


def saturation_table(saturations: list[GateSaturation]) -> Table:
    table = Table(
        title="gate saturation: share of time steps below 0.1 (left) / above 0.9 (right)",
        title_justify="left",
        header_style="bold",
    )
    for column in ("layer", "gate", "mean left", "mean right", "units mostly left", "units mostly right"):
        table.add_column(column, justify="right")
    for saturation in saturations:
        s = saturation.summary()
        table.add_row(
            str(s["layer"]),
            str(s["gate"]),
            f"{s['mean_left']:.3f}",
            f"{s['mean_right']:.3f}",
            f"{s['units_mostly_left']}/{s['units']}",
            f"{s['units_mostly_right']}/{s['units']}",
        )
    return table


def matches_table(matches: list[UnitMatch], pattern: str) -> Table:
    table = Table(title=f"units that track {pattern!r}", title_justify="left", header_style="bold")
    for column in ("rank", "layer", "unit", "quantity", "correlation"):
        table.add_column(column, justify="right")
    for rank, match in enumerate(matches, start=1):
        table.add_row(
            str(rank), str(match.layer), str(match.unit), match.quantity, f"{match.correlation:+.3f}"
        )
    return table


# ---- HTML

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
pre {{ font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 14px; line-height: 1.5;
       white-space: pre-wrap; word-break: break-all; }}
pre span {{ color: #000; }}
.legend span {{ padding: 0 0.6em; font-family: ui-monospace, monospace; }}
select {{ font-size: 1em; max-width: 40em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{subtitle}</p>
<p><label>unit <select id="series"></select></label>
<span class="legend" id="legend"></span></p>
<pre id="text"></pre>
<script id="data" type="application/json">{data}</script>
<script>
(function () {{
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var RED = [239, 83, 80], BLUE = [66, 133, 244];
  function colour(value, low, high) {{
    var half = (high - low) / 2 || 1, v = (value - (low + high) / 2) / half;
    v = Math.max(-1, Math.min(1, v));
    var end = v >= 0 ? RED : BLUE, w = Math.abs(v);
    return "rgb(" + end.map(function (c) {{ return Math.round(255 + (c - 255) * w); }}).join(",") + ")";
  }}
  var pre = document.getElementById("text"), spans = [];
  data.pieces.forEach(function (piece) {{
    var span = document.createElement("span");
    span.textContent = piece.split("\\n").join("\\u21b5\\n");
    pre.appendChild(span);
    spans.push(span);
  }});
  var select = document.getElementById("series");
  data.series.forEach(function (s, i) {{
    var option = document.createElement("option");
    option.value = i;
    option.textContent = s.label;
    select.appendChild(option);
  }});
  function show(i) {{
    var s = data.series[i];
    spans.forEach(function (span, k) {{
      span.style.background = colour(s.values[k], s.low, s.high);
      span.title = "token " + k + ": " + s.values[k];
    }});
    var legend = document.getElementById("legend");
    legend.textContent = "";
    var stops = [[s.low, s.low.toFixed(2)], [(s.low + s.high) / 2, "mid"], [s.high, s.high.toFixed(2)]];
    stops.forEach(function (p) {{
      var item = document.createElement("span");
      item.style.background = colour(p[0], s.low, s.high);
      item.textContent = p[1];
      legend.appendChild(item);
    }});
  }}
  select.addEventListener("change", function () {{ show(+select.value); }});
  select.value = data.selected;
  show(data.selected);
}})();
</script>
</body>
</html>
"""


def _rounded(values: Tensor) -> list[float]:
    return [float(f"{v:.4g}") for v in values.tolist()]


def html_page(inspection: Inspection, series: list[Series], selected: int = 0, subtitle: str = "") -> str:
    """A standalone page: the text coloured by one series at a time, picked from a <select>."""
    data = {
        "pieces": inspection.pieces,
        "series": [
            {"label": s.label, "low": s.low, "high": s.high, "values": _rounded(s.values)} for s in series
        ],
        "selected": selected,
    }
    # "<" escaped so no text inside the JSON can close the <script> element.
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    return _PAGE.format(title="lstmtext inspect", subtitle=html.escape(subtitle), data=payload)


def write_html(
    path: Path, inspection: Inspection, series: list[Series], selected: int = 0, subtitle: str = ""
) -> None:
    write_output(Path(path), html_page(inspection, series, selected, subtitle).encode("utf-8"))


# ---- PNG


def _figure_class() -> type:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise LstmTextError(
            "--png needs matplotlib: pip install 'lstmtext[plot]' (or pip install matplotlib)"
        ) from None
    return Figure


def _text_grid(inspection: Inspection, series: Series) -> tuple[list[str], Tensor]:
    """The text wrapped into lines of characters and an (lines, columns, 3) RGB grid."""
    owner = [0] * len(inspection.text)  # character -> the token that shows it
    for k, (start, end) in enumerate(inspection.spans):
        for c in range(start, end):
            owner[c] = k
    lines: list[str] = [""]
    colours: list[list[tuple[int, int, int]]] = [[]]
    for c, char in enumerate(inspection.text):
        if len(lines) > PNG_TEXT_MAX_LINES:
            break
        rgb = blue_white_red(float(series.values[owner[c]]), series.low, series.high)
        if char == "\n":
            colours[-1].append(rgb)  # the line break keeps its colour, as a cell at the line end
            lines[-1] += " "
            lines.append("")
            colours.append([])
            continue
        if len(lines[-1]) >= PNG_TEXT_COLUMNS:
            lines.append("")
            colours.append([])
        lines[-1] += char if char.isprintable() else " "
        colours[-1].append(rgb)
    lines, colours = lines[:PNG_TEXT_MAX_LINES], colours[:PNG_TEXT_MAX_LINES]
    # A fixed width keeps the characters one size whatever the text's line lengths.
    width = PNG_TEXT_COLUMNS
    grid = torch.full((len(lines), width, 3), 255, dtype=torch.uint8)
    for row, line_colours in enumerate(colours):
        if line_colours:
            grid[row, : len(line_colours)] = torch.tensor(line_colours, dtype=torch.uint8)
    return lines, grid


def write_png(
    path: Path,
    inspection: Inspection,
    selected: Series,
    heatmap: list[Series],
    saturations: list[GateSaturation] | None = None,
) -> None:
    """The text coloured by `selected`, a heatmap of `heatmap` rows x tokens, and optionally
    the gate saturation scatter plots (fraction left- vs right-saturated, one point per unit)."""
    Figure = _figure_class()
    import io

    heatmap = heatmap[:HEATMAP_MAX_ROWS]
    lines, grid = _text_grid(inspection, selected)
    text_height = 0.6 + 0.25 * len(lines)
    heat_height = 1.2 + 0.18 * len(heatmap)
    heights = [text_height, heat_height] + ([3.2] if saturations else [])
    figure = Figure(figsize=(14, sum(heights) + 0.6), layout="constrained")
    panels = figure.subfigures(len(heights), 1, height_ratios=heights)

    text_axes = panels[0].subplots()
    # Character cells about as tall as monospace glyphs: 1.8 times their width.
    text_axes.imshow(grid.numpy(), aspect=1.8, interpolation="nearest")
    for row, line in enumerate(lines):
        for column, char in enumerate(line):
            if not char.isspace():
                text_axes.text(column, row, char, ha="center", va="center", family="monospace", fontsize=8)
    text_axes.set_axis_off()
    text_axes.set_title(
        f"{selected.label}: blue {selected.low:+.2f}, white mid, red {selected.high:+.2f}", fontsize=10
    )

    heat_axes = panels[1].subplots()
    rows = torch.stack([(s.values - (s.low + s.high) / 2) / (((s.high - s.low) / 2) or 1.0) for s in heatmap])
    image = heat_axes.imshow(
        rows.clamp(-1, 1).numpy(), aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-1, vmax=1
    )
    heat_axes.set_yticks(range(len(heatmap)), [s.label for s in heatmap], fontsize=7)
    if len(inspection) <= 120:
        labels = [p.replace("\n", NEWLINE_MARK) or " " for p in inspection.pieces]
        heat_axes.set_xticks(range(len(inspection)), labels, fontsize=7, family="monospace")
    else:
        heat_axes.set_xlabel("token")
    panels[1].colorbar(image, ax=heat_axes, label="value, scaled to each row's range", shrink=0.8)

    if saturations:
        scatter_axes = panels[2].subplots(1, len(SIGMOID_GATES), sharex=True, sharey=True)
        for axes, gate in zip(scatter_axes, SIGMOID_GATES, strict=True):
            for saturation in (s for s in saturations if s.gate == gate):
                axes.scatter(
                    saturation.left.numpy(),
                    saturation.right.numpy(),
                    s=8,
                    alpha=0.6,
                    label=f"layer {saturation.layer}",
                )
            axes.plot([0, 1], [1, 0], color="grey", linewidth=0.5)
            axes.set_title(f"{gate} gate", fontsize=10)
            axes.set_xlabel("fraction left-saturated (< 0.1)")
            axes.set_xlim(0, 1)
            axes.set_ylim(0, 1)
        scatter_axes[0].set_ylabel("fraction right-saturated (> 0.9)")
        scatter_axes[-1].legend(fontsize=8)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    write_output(Path(path), buffer.getvalue())
