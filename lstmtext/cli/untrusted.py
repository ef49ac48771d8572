"""Strings from files (labels, names, paths) shown on a terminal: never as escapes or markup.

A label in a checkpoint's config.json is anyone's text: "\x1b]0;...\x07" would retitle the
terminal, "\x1b[2J" clear it, and "[link=...]" become rich markup. Control characters are
shown as their \\x.. escapes and brackets escaped, so the text is printed as it is written.
"""

from __future__ import annotations

import re

from rich.markup import escape

# C0 controls (tab and newline too: one cell, one line), DEL, and C1 controls (U+009B is
# a one-character CSI on some terminals).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escaped(text: object) -> str:
    """`text` as rich markup that prints it literally, control characters as \\x.. escapes."""
    return escape(_CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text)))
