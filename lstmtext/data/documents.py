"""The texts `lstmtext classify` labels: a file, stdin, a folder of .txt files, or the rows of a
file, each with a name to show it under. Labelled data for training is `lstmtext.data.labelled`'s."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lstmtext.data.labelled import DEFAULT_COLUMNS, read_source
from lstmtext.errors import DataError


@dataclass(frozen=True)
class Document:
    """One text to classify and a name to show it under (a path, `path:line` or `<stdin>`)."""

    name: str
    text: str


def read_documents(
    sources: Sequence[str | Path], *, lines: bool = False, encoding: str = "utf-8"
) -> Iterator[Document]:
    """Texts to classify: a file is one text, `-` is stdin, a directory gives each .txt in it
    (recursively), and a .tsv gives each row (its text column when rows are `label<TAB>text`).
    With `lines`, every non-empty line of a plain file or stdin is its own text.
    """
    for source in map(str, sources):
        path = Path(source)
        if source != "-" and path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise DataError(f"{source}: no .txt files in this directory")
            for file in files:
                yield from _documents_of(str(file), lines, encoding)
        else:
            yield from _documents_of(source, lines, encoding)


def _documents_of(source: str, lines: bool, encoding: str) -> Iterator[Document]:
    text = read_source(source, encoding)
    name = "<stdin>" if source == "-" else source
    tsv = source.lower().endswith(".tsv")
    if tsv or lines:
        found = False
        text_index: int | None = None  # from a header row naming the columns
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            if tsv and not found and text_index is None and _is_header(line):
                text_index = [field.strip() for field in line.split("\t")].index(DEFAULT_COLUMNS.text)
                continue
            if tsv and "\t" in line:
                fields = line.split("\t") if text_index is not None else line.split("\t", 1)
                column = text_index if text_index is not None else 1
                line = fields[column] if column < len(fields) else ""
                if not line.strip():
                    raise DataError(f"{name}:{number}: empty text")
            found = True
            yield Document(f"{name}:{number}", line)
        if not found:
            raise DataError(f"{name}: empty, nothing to classify")
        return
    if not text.strip():
        raise DataError(f"{name}: empty, nothing to classify")
    yield Document(name, text)


def _is_header(line: str) -> bool:
    """Whether a TSV's first row names its columns: both the label's and the text's. One that
    names only one (`positive<TAB>text`) is a row whose text happens to be that word."""
    fields = {field.strip() for field in line.split("\t")}
    return {DEFAULT_COLUMNS.label, DEFAULT_COLUMNS.text} <= fields
