"""Where corpus text comes from: files, folders of .txt, stdin, catalogue names, compressed
files (.gz, .bz2, .xz, streamed); read with bounds and checked (empty, binary, not decodable)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from lstmtext.data.reading import MAX_TEXT_BYTES
from lstmtext.errors import CorpusError

_SNIFF_BYTES = 8192  # a NUL byte this early means a binary file, as git and grep decide
# A source that is not a regular file (stdin, a pipe, /dev/zero) or is compressed is read in
# chunks and refused past the limit every text input has (lstmtext.data.reading), not read on
# until memory runs out; a regular file that big is memory-mapped instead (lstmtext.data.bigcorpus).
MAX_READ_BYTES = MAX_TEXT_BYTES
_READ_CHUNK = 1 << 20
# Read as their decompressed text, streamed: a corpus usually comes compressed.
DECOMPRESSORS: dict[str, Callable[[BinaryIO], Any]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw),
    ".bz2": lambda raw: bz2.BZ2File(raw),
    ".xz": lambda raw: lzma.LZMAFile(raw),  # noqa: SIM115 - the caller closes it
}
_DECOMPRESS_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


def read_text(
    sources: Sequence[str],
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    stdin: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    allow_download: bool = True,
) -> str:
    """The text of every source, joined with a newline where one does not already end.

    A source is a file, a directory (all ``*.txt`` inside, recursively, in sorted order),
    ``-`` for standard input, or a catalogue name: ``tinyshakespeare`` or ``ptb`` (the file to
    train on: train, text or all) or ``ptb:valid`` (one role; ``env`` and ``allow_download``
    go to ``lstmtext.corpora.resolve``). An existing path wins over a catalogue name.
    """
    if not sources:
        raise CorpusError("no corpus given")
    texts: list[str] = []
    wide = _is_wide(encoding)
    for source in sources:
        for name, data in _source_bytes(source, stdin, env, allow_download, wide):
            texts.append(decode_corpus(data, name, encoding=encoding, errors=errors))
    pieces: list[str] = []
    for text in texts:
        if pieces and not pieces[-1].endswith("\n"):
            pieces.append("\n")
        pieces.append(text)
    return "".join(pieces)


def _source_bytes(
    source: str, stdin: TextIO | None, env: Mapping[str, str] | None, allow_download: bool, wide: bool = False
) -> list[tuple[str, bytes]]:
    if source == "-":
        stream = sys.stdin if stdin is None else stdin
        if stream is None:
            raise CorpusError("<stdin>: standard input is closed")
        # Bytes when the stream has them, so stdin is decoded and checked like any file.
        if hasattr(stream, "buffer"):
            return [("<stdin>", _read_bounded(stream.buffer, "<stdin>", wide))]
        text = stream.read(MAX_READ_BYTES + 1)
        if len(text) > MAX_READ_BYTES:
            raise CorpusError(f"<stdin>: more than {MAX_READ_BYTES >> 20} MiB of text to read whole")
        return [("<stdin>", text.encode("utf-8"))]
    return [(str(file), _read_bytes(file, wide)) for file in source_files(source, env, allow_download)]


def source_files(
    source: str, env: Mapping[str, str] | None = None, allow_download: bool = True
) -> list[Path]:
    """The files a source other than stdin names: itself, the ``*.txt`` of a folder (recursively,
    sorted), or a catalogue corpus's file (``ptb``, ``ptb:valid``); an existing path wins."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise CorpusError(f"{path}: directory has no .txt files")
        return files
    if path.exists():
        return [path]
    from lstmtext.corpora import catalogue, resolve  # here: corpora is only needed for names

    name, _, role = source.partition(":")
    if name in catalogue():
        return [resolve(name, env=env, allow_download=allow_download).path(role or None)]
    raise CorpusError(
        f"{path}: no such file or directory, nor a corpus name ({', '.join(sorted(catalogue()))})"
    )


def is_compressed(path: Path) -> bool:
    return Path(path).suffix.lower() in DECOMPRESSORS


def open_corpus(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(text bytes, raw file): the raw file's position tells how far a compressed file is read."""
    raw = Path(path).open("rb")  # noqa: SIM115 - the caller closes both
    decompress = DECOMPRESSORS.get(Path(path).suffix.lower())
    return (decompress(raw) if decompress else raw), raw


def _read_bytes(path: Path, wide: bool = False) -> bytes:
    try:
        if path.is_file() and not is_compressed(path):
            return path.read_bytes()  # its size is known: read at once
        stream, raw = open_corpus(path)
        with raw, stream:
            return _read_bounded(stream, str(path), wide)
    except _DECOMPRESS_ERRORS as error:
        raise CorpusError(f"{path}: not a valid {path.suffix[1:]} file ({error})") from None
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error.strerror or error})") from None


def _read_bounded(stream: BinaryIO, name: str, wide: bool = False) -> bytes:
    """Read a stream, a device or a compressed file in chunks: a binary head is refused at the
    first chunk, and an endless source (/dev/zero, a pipe that never ends) at MAX_READ_BYTES,
    not when memory runs out."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        if not chunks:
            _check_head(chunk, name, nul_means_binary=not wide)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ_BYTES:
            raise CorpusError(
                f"{name}: more than {MAX_READ_BYTES >> 20} MiB of text to read whole; save it as one "
                "UTF-8 file, which is memory-mapped at any size"
            )
    return b"".join(chunks)


def decode_corpus(data: bytes, name: str, *, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode one file's bytes, refusing binary, undecodable, empty and whitespace-only input."""
    _check_head(data, name, nul_means_binary=not _is_wide(encoding))
    try:
        text = data.decode(encoding, errors)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r} or error handler {errors!r}") from None
    except UnicodeDecodeError as error:
        bad = data[error.start]
        raise CorpusError(
            f"{name}: not valid {error.encoding} at byte {error.start} (0x{bad:02x}); "
            "pass --encoding (e.g. --encoding latin-1) or --errors replace"
        ) from None
    if not text.strip():
        raise CorpusError(f"{name}: file has only whitespace")
    return text


def _is_wide(encoding: str) -> bool:
    """UTF-16 and UTF-32 text is full of NUL bytes: no sign of a binary file there."""
    return encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32"))


def _check_head(data: bytes, name: str, nul_means_binary: bool = True) -> None:
    if not data:
        raise CorpusError(f"{name}: file is empty")
    nul = data.find(b"\0", 0, _SNIFF_BYTES) if nul_means_binary else -1
    if nul >= 0:
        raise CorpusError(f"{name}: looks binary (NUL byte at offset {nul}), not a text file")
