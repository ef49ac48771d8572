"""Where a text can be cut so that its pieces tokenise as the whole does.

A tokenizer handed a many-MB line at once holds all of it (and its offsets) in memory, so
training and encoding hand it pieces: `text_pieces` cuts before spaces, which every
level's pre-tokenizer splits at anyway; `split_blocks` and `line_blocks` cut after line
breaks, where byte-level BPE needs `bpe_cut_is_exact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Training hands the trainers pieces of about this size: a trainer holds what it is given at
# once, and a 50 MB one-line corpus given whole peaked at 10.9 GB RSS in BPE training.
PIECE_CHARS = 1 << 20
_PIECE_CUT = re.compile(r"(?<=\S) ")


def text_pieces(text: str, size: int | None = None) -> Iterator[str]:
    """`text` in pieces of about `size` characters (PIECE_CHARS), each cut just before a space
    that follows a non-space, the last piece growing when there is none.

    Every level's pre-tokenizer splits there anyway (byte-level BPE starts a word at the
    space before it; words and characters end at spaces), so the pieces give the trainers
    the same words as the whole text, without a many-MB line ever being handed over whole.
    """
    size = size or PIECE_CHARS
    start = 0
    while len(text) - start > size:
        cut = _PIECE_CUT.search(text, start + size)
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]


def split_blocks(text: str, size: int, bpe: bool = True) -> list[str]:
    """Cut text after newlines into blocks of about ``size`` characters that encode as the whole.

    Any newline will do at char and word level; byte-level BPE needs ``bpe_cut_is_exact``
    places. A block with no such place grows.
    """
    blocks = []
    start = 0
    while len(text) - start > size:
        cut = text.find("\n", start + size)
        while (
            bpe
            and 0 <= cut < len(text) - 2
            and not bpe_cut_is_exact(text[cut - 1], text[cut + 1], text[cut + 2])
        ):
            cut = text.find("\n", cut + 1)
        if cut < 0 or (bpe and cut >= len(text) - 2):
            break
        blocks.append(text[start : cut + 1])
        start = cut + 1
    if start < len(text):
        blocks.append(text[start:])
    return blocks


def bpe_cut_is_exact(before: str, after: str, after2: str) -> bool:
    """Whether byte-level BPE encodes a text the same when it is cut after a newline.

    ``before`` is the character before the newline, ``after`` and ``after2`` the two after it.
    The GPT-2 regex gives a whitespace run followed by a word all but its last character as
    one piece, then that last one alone or as the word's leading space; at the end of a text
    it takes the whole run. So a cut is invisible where the newline is the whole run
    (``a\nb``) or the last but one of it, with one space left for the next word (``a \n b``,
    as at every line start of PTB).
    """
    return (_is_plain(before) and _is_plain(after)) or (after == " " and _is_plain(after2))


def _is_plain(char: str) -> bool:
    return "!" <= char <= "~"  # printable ASCII: not whitespace under any regex flavour


def line_blocks(text: str, size: int) -> Iterable[tuple[int, int]]:
    """(start, end) of blocks of about ``size`` characters ending after a newline."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield start, end
        start = end
