"""Showing Explanations: coloured text for the terminal, a JSON record, a standalone HTML page.

Green: the token pushes towards the predicted class; red: against it; the stronger the
colour, the larger its contribution, scaled to the largest in that text. Byte tokens that
share one character are drawn as one piece with their summed score; the whitespace a
byte-level BPE token carries before its word is drawn uncoloured.

The text is anyone's: its control characters are drawn as \\x.. escapes (newlines and tabs kept
in the coloured text) and its brackets as brackets, on the terminal and in the page alike.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from lstmtext.classifier.explain import BASELINE, Explanation
from lstmtext.cli.inspect_render import NEWLINE_MARK
from lstmtext.cli.untrusted import literal
from lstmtext.files import write_output

GREEN = (76, 175, 80)
RED = (239, 83, 80)  # inspect's red, so the two pages read alike
SENTENCES_SHOWN = 5


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    score: float | None  # None: text no token stands for (gaps, the space before a BPE word)


def pieces(explanation: Explanation) -> list[Piece]:
    """The whole text cut into drawable pieces, in order, covering every character once."""
    text = explanation.text
    groups: list[list[float]] = []  # [start, end, score]
    for token in sorted(explanation.tokens, key=lambda t: (t.start, t.end)):
        if groups and token.start < groups[-1][1]:  # overlapping spans: byte tokens of one character
            groups[-1][1] = max(groups[-1][1], token.end)
            groups[-1][2] += token.score
        else:
            groups.append([token.start, token.end, token.score])
    out: list[Piece] = []
    cursor = 0
    for start_f, end_f, score in groups:
        start, end = int(start_f), int(end_f)
        if start > cursor:
            out.append(Piece(cursor, start, None))
        start = max(start, cursor)
        word = start
        while word < end and text[word].isspace():
            word += 1
        word = start if word == end else word  # a token of whitespace only keeps its colour
        if word > start:
            out.append(Piece(start, word, None))
        if end > word:
            out.append(Piece(word, end, score))
        cursor = max(cursor, end)
    if cursor < len(text):
        out.append(Piece(cursor, len(text), None))
    return out


def colour(score: float | None, scale: float) -> tuple[int, int, int] | None:
    if score is None or scale <= 0:
        return None
    weight = min(1.0, abs(score) / scale)
    end = GREEN if score > 0 else RED
    return tuple(round(255 + (channel - 255) * weight) for channel in end)  # type: ignore[return-value]


def scale_of(explanation: Explanation) -> float:
    return max((abs(t.score) for t in explanation.tokens), default=0.0)


def headline(name: str, explanation: Explanation, label: str, temperature: float) -> Text:
    shown = label if label == explanation.label else f"{label} (most probable: {explanation.label})"
    return Text(
        literal(
            f"{name}: {shown} {explanation.probability:.3f}; green for {explanation.label}, red against "
            f"(integrated gradients, {explanation.steps} steps, baseline {BASELINE}, T = {temperature:.3g})"
        )
    )


def coloured_text(explanation: Explanation) -> Text:
    text = Text()
    scale = scale_of(explanation)
    for piece in pieces(explanation):
        rgb = colour(piece.score, scale)
        style = f"black on rgb({rgb[0]},{rgb[1]},{rgb[2]})" if rgb else ""
        lines = explanation.text[piece.start : piece.end].split("\n")
        for i, line in enumerate(lines):
            if line:
                text.append(literal(line, keep="\t"), style=style)
            if i < len(lines) - 1:
                if rgb:
                    text.append(NEWLINE_MARK, style=style)
                text.append("\n")
    return text


def _snippet(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


def sentences_table(explanation: Explanation, shown: int = SENTENCES_SHOWN) -> Table:
    """The sentences that weigh most, either way, in the order of the text."""
    ranked = sorted(explanation.sentences, key=lambda s: abs(s.score), reverse=True)[:shown]
    table = Table(
        title=f"sentences that weigh most ({len(ranked)} of {len(explanation.sentences)})",
        title_justify="left",
        header_style="bold",
        box=None,
    )
    table.add_column("score", justify="right")
    table.add_column("sentence", overflow="fold")
    for sentence in sorted(ranked, key=lambda s: s.start):
        style = "green" if sentence.score > 0 else "red"
        table.add_row(
            Text(f"{sentence.score:+.2f}", style=style),
            Text(literal(_snippet(explanation.text[sentence.start : sentence.end]))),
        )
    return table


def as_dict(explanation: Explanation) -> dict[str, object]:
    """The `explanation` object of `classify --explain --json`."""
    text = explanation.text
    return {
        "method": "integrated gradients",
        "target": f"calibrated log-odds of {explanation.label}",
        "baseline": BASELINE,
        "steps": explanation.steps,
        "value": round(explanation.value, 6),
        "baseline_value": round(explanation.baseline_value, 6),
        "completeness_gap": round(explanation.completeness_gap, 6),
        "tokens": [
            {
                "text": text[t.start : t.end],
                "start": t.start,
                "end": t.end,
                "id": t.token_id,
                "score": round(t.score, 6),
            }
            for t in explanation.tokens
        ],
        "sentences": [
            {"text": text[s.start : s.end], "start": s.start, "end": s.end, "score": round(s.score, 6)}
            for s in explanation.sentences
        ],
    }


# ---- HTML

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lstmtext classify --explain</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }}
pre {{ font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 14px; line-height: 1.5;
       white-space: pre-wrap; word-break: break-word; }}
pre span {{ color: #000; }}
.legend span {{ padding: 0 0.6em; font-family: ui-monospace, monospace; }}
table {{ border-collapse: collapse; font-size: 14px; }}
td {{ padding: 0.15em 0.6em; vertical-align: top; }}
td.score {{ text-align: right; font-family: ui-monospace, monospace; }}
</style>
</head>
<body>
<h1>Why did it say that?</h1>
<p>Each token's contribution to the calibrated log-odds of the predicted class, by integrated
gradients over the embeddings ({steps}; baseline: the {baseline}). Hover a token for its score.</p>
<p class="legend"><span style="background: rgb{red}">against</span>
<span style="background: #fff">none</span>
<span style="background: rgb{green}">for the predicted class</span></p>
{sections}
</body>
</html>
"""


def _shown(text: str) -> str:
    """`text` as HTML that shows it as written: control characters (a browser draws some as
    nothing, U+202E reverses what follows) as \\x.. escapes, newlines and tabs kept."""
    return html.escape(literal(text, keep="\n\t"))


def _section(name: str, label: str, explanation: Explanation) -> str:
    scale = scale_of(explanation)
    spans = []
    for piece in pieces(explanation):
        surface = explanation.text[piece.start : piece.end]
        rgb = colour(piece.score, scale)
        if rgb is None:
            spans.append(_shown(surface))
            continue
        spans.append(
            f'<span class="token" data-start="{piece.start}" data-end="{piece.end}" '
            f'title="{piece.score:+.3f}" style="background: rgb{rgb}">{_shown(surface)}</span>'
        )
    rows = []
    if len(explanation.sentences) > 1:
        ranked = sorted(explanation.sentences, key=lambda s: abs(s.score), reverse=True)[:SENTENCES_SHOWN]
        for sentence in sorted(ranked, key=lambda s: s.start):
            rgb = colour(sentence.score, max(abs(s.score) for s in ranked))
            rows.append(
                f'<tr><td class="score" style="background: rgb{rgb}">{sentence.score:+.2f}</td>'
                f"<td>{_shown(_snippet(explanation.text[sentence.start : sentence.end], 200))}</td></tr>"
            )
    table = (
        f"<h3>Sentences that weigh most ({len(rows)} of {len(explanation.sentences)})</h3>"
        f"<table>{''.join(rows)}</table>"
        if rows
        else ""
    )
    verdict = label if label == explanation.label else f"{label} (most probable: {explanation.label})"
    return (
        f'<section class="explanation"><h2>{_shown(name)}: <span class="verdict">'
        f"{_shown(verdict)}</span> {explanation.probability:.3f}</h2>"
        f"<pre>{''.join(spans)}</pre>{table}</section>"
    )


def html_page(items: Sequence[tuple[str, str, Explanation]]) -> str:
    """A standalone page (no scripts, no fetches) of (name, shown label, explanation) items."""
    steps = sorted({e.steps for _, _, e in items})
    return _PAGE.format(
        steps=", ".join(f"{s} steps" for s in steps),
        baseline=BASELINE,
        red=RED,
        green=GREEN,
        sections="\n".join(_section(name, label, e) for name, label, e in items),
    )


def write_html(path: Path, items: Sequence[tuple[str, str, Explanation]]) -> None:
    write_output(Path(path), html_page(items).encode("utf-8"))
