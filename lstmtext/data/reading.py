"""Text inputs read under one limit: classify's and inspect's texts, labelled data, teacher answers.

A file or stdin is read in chunks of 1 MiB and checked as it comes, so that an endless or huge
input (/dev/zero, `yes |`, a 1 GB line) is refused early instead of being held whole first:

- a NUL byte is binary data, refused at the chunk that holds it (the first, for /dev/zero);
- a byte sequence that is not valid in the encoding is refused at its chunk, naming line and byte;
- more than MAX_TEXT_BYTES (256 MiB, the size an LM corpus is read whole under) is refused.

So at most MAX_TEXT_BYTES + one chunk is ever read, and the decoded text is held twice at the
end (its pieces and the joined string): for ASCII text about 2 x 256 MiB at most.
`read_prefix` reads only the first bytes of an input (inspect looks at its first tokens).
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path
from typing import BinaryIO

from lstmtext.errors import DataError, LstmTextError

MAX_TEXT_BYTES = 256 * 2**20
CHUNK_BYTES = 2**20
NEWLINE = b"\n"


def read_input(
    source: str, encoding: str = "utf-8", *, error: type[LstmTextError] = DataError, name: str | None = None
) -> str:
    """The whole text of a file or stdin (`-`), a leading BOM dropped, under the limits above;
    a failure is one line of `error` naming the file."""
    return _read(source, encoding, MAX_TEXT_BYTES, error, name, refuse_more=True)[0]


def read_prefix(
    source: str, size: int, encoding: str = "utf-8", *, error: type[LstmTextError] = DataError
) -> tuple[str, bool]:
    """The text of the first `size` bytes of a file or stdin (`-`, at most MAX_TEXT_BYTES) and
    whether there was more; a character cut at the end is left out, never replaced."""
    return _read(source, encoding, min(size, MAX_TEXT_BYTES), error, None, refuse_more=False)


def _open(source: str, shown: str, error: type[LstmTextError]) -> BinaryIO:
    if source == "-":
        # Started with stdin closed (`<&-`), Python has no sys.stdin at all.
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None or buffer.closed:
            raise error(f"{shown}: standard input is closed: nothing to read")
        return buffer
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by _read
    except FileNotFoundError:
        raise error(f"{shown}: no such file") from None
    except OSError as failure:
        raise error(f"{shown}: cannot read ({failure.strerror or failure})") from None


def _read(
    source: str,
    encoding: str,
    limit: int,
    error: type[LstmTextError],
    name: str | None,
    *,
    refuse_more: bool,
) -> tuple[str, bool]:
    shown = name or ("<stdin>" if source == "-" else source)
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
    except LookupError:
        raise error(f"unknown encoding {encoding!r}") from None
    # A NUL is text in UTF-16/32, binary in every encoding that keeps ASCII as it is.
    check_nul = not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    stream = _open(source, shown, error)
    pieces: list[str] = []
    offset = 0  # bytes read before this chunk
    line = 1  # of this chunk's first byte
    more = False
    try:
        while True:
            want = CHUNK_BYTES if refuse_more else min(CHUNK_BYTES, limit - offset)
            chunk = stream.read(want) if want > 0 else b""
            if not chunk:
                more = want == 0 and bool(stream.read(1))
                break
            if check_nul and (nul := chunk.find(b"\0")) >= 0:
                where = line + chunk.count(NEWLINE, 0, nul)
                raise error(f"{shown}:{where}: binary data (a NUL byte at byte {offset + nul}), not text")
            pending = len(decoder.getstate()[0])
            try:
                pieces.append(decoder.decode(chunk))
            except UnicodeDecodeError as failure:
                at = max(failure.start - pending, 0)
                where = line + chunk.count(NEWLINE, 0, at)
                raise error(f"{shown}:{where}: not valid {encoding} (byte {offset + at})") from None
            line += chunk.count(NEWLINE)
            offset += len(chunk)
            if refuse_more and offset > limit:
                raise error(
                    f"{shown}: over {limit // 2**20} MiB, more text than lstmtext reads at once; "
                    "split it into smaller files"
                )
        if refuse_more:
            try:
                pieces.append(decoder.decode(b"", final=True))
            except UnicodeDecodeError:
                raise error(
                    f"{shown}:{line}: not valid {encoding} (cut off at the end, byte {offset})"
                ) from None
    except OSError as failure:
        raise error(f"{shown}: cannot read ({failure.strerror or failure})") from None
    finally:
        if source != "-":
            stream.close()
    return "".join(pieces).removeprefix("\ufeff"), more


def is_file_name(value: str | Path) -> bool:
    """Whether `value` names a file by its suffix (a teacher's answers: .jsonl, .json, .ndjson)."""
    return Path(value).suffix.lower() in (".jsonl", ".json", ".ndjson")
