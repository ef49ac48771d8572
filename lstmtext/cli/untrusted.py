"""Strings from files (labels, names, paths, texts) shown on a terminal: never as escapes or markup.

A label in a checkpoint's config.json, or a review, is anyone's text: "\x1b]0;...\x07" would
retitle the terminal, "\x1b[2J" clear it, U+202E reverse what follows, and "[link=...]" become
rich markup. Control characters are shown as their \\x.. escapes (bidi controls as \\u....) and
brackets escaped, so the text is printed as it is written.
"""

from __future__ import annotations

import json
import re

from rich.markup import escape

# C0 controls (tab and newline too: one cell, one line), DEL, C1 controls (U+009B is a
# one-character CSI on some terminals), and the bidi controls that reorder what follows them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves raw: it escapes C0 itself.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(text: object, keep: str = "") -> str:
    """`text` as plain text, control characters as escapes; those in `keep` (say, the newlines
    of a review shown whole) are left as they are."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _shown(m), str(text))


def escaped(text: object) -> str:
    """`text` as rich markup that prints it literally, control characters as \\x.. escapes."""
    return escape(literal(text))


def json_line(record: object) -> str:
    """One JSON line, readable as UTF-8 but with every control character a JSON escape: the same
    value to a parser, and nothing a terminal acts on when the line is shown raw."""
    line = json.dumps(record, ensure_ascii=False)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
