"""Hostile inputs, round three (last part): what reaches the terminal, the exported files, the
figures of evaluate and the reading of TSV, labels and signals. Each test runs the CLI on tiny
data; the embedded sentiment classifier stands in where a trained model is needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli

# ---- 18. classify --explain shows the review as written, never as escapes or markup
# (a NUL never gets this far: a text holding one is refused as binary when it is read)

HOSTILE_REVIEW = (
    "\x1b]0;PWNED\x07\x1b[2J\x1b[?1049hGreat film.\x9b2J\x7f [link=https://evil.example]Awful[/link] "
    "ending. A fine \u202eevil\u202c cast. [/bold] [red]great[/red]"
)
SGR = re.compile("\x1b\\[[0-9;]*m")  # the colours rich draws itself


def test_explain_shows_control_sequences_and_markup_of_a_review_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    review = tmp_path / "e.txt"
    review.write_text(HOSTILE_REVIEW, encoding="utf-8")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal's view: colours, and links if any were made
    result = run_cli(["classify", str(review), "--explain"])
    assert result.exit_code == 0, result.stderr
    shown = SGR.sub("", result.stdout)
    for sequence in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e"):
        assert sequence not in shown, repr(sequence)
    assert "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[?1049hGreat film.\\x9b2J\\x7f" in shown
    assert "[link=https://evil.example]Awful[/link]" in shown
    assert "\\u202eevil\\u202c" in shown
    assert "[/bold] [red]great[/red]" in shown  # in the sentence table, whole


def test_explain_of_a_review_with_stray_markup_is_no_internal_error(tmp_path: Path) -> None:
    review = tmp_path / "m.txt"
    review.write_text("A fine film. [/bold] [red]great[/red]", encoding="utf-8")
    result = run_cli(["classify", str(review), "--explain"])
    assert result.exit_code == 0, result.stderr
    assert "internal error" not in result.stderr
    assert result.stdout.count("[/bold] [red]great[/red]") == 2  # the coloured text and the table


def test_explain_html_and_json_keep_the_review_and_escape_its_controls(tmp_path: Path) -> None:
    review = tmp_path / "e.txt"
    review.write_text(HOSTILE_REVIEW, encoding="utf-8")
    page = tmp_path / "why.html"
    result = run_cli(["classify", str(review), "--explain", "--json", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    for sequence in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e"):
        assert sequence not in result.stdout, repr(sequence)
    record = json.loads(result.stdout)
    explanation = record["explanation"]
    assert all(t["text"] == HOSTILE_REVIEW[t["start"] : t["end"]] for t in explanation["tokens"])
    assert explanation["sentences"][0]["text"].startswith("\x1b]0;PWNED\x07")  # the value, unchanged
    html = page.read_text(encoding="utf-8")
    for sequence in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e", "<link", 'href="https://evil'):
        assert sequence not in html, repr(sequence)
    assert "[link=https://evil.example]Awful[/link]" in re.sub("<[^>]*>", "", html)
    assert "\\x1b]0;PWNED\\x07" in html
