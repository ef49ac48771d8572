"""Labelled text for classifiers: read it from the formats people ship it in, check it, say where it is wrong.

Formats (picked by what the source is, then by its first line):

- a folder per label: ``DIR/pos/*.txt``, ``DIR/neg/*.txt`` (as IMDb ships), one text per file;
  a folder named ``unsup`` (IMDb's unlabelled reviews) is not a label and is skipped;
- JSONL (``.jsonl`` / ``.json``, or, in a file of no known suffix, a first line starting with ``{``):
  ``{"text": ..., "label": ...}``;
- CSV (``.csv``) with a header row naming the label and text columns;
- TSV with such a header, or without one: ``label<TAB>text`` (as in ``../shared/corpora``).

The texts `classify` labels are read by `lstmtext.data.documents`.

Every problem is a `DataError` of one line naming the file and the line: a missing column,
an empty text, a missing or unknown label, mixed delimiters, or a single class.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lstmtext.data.reading import read_input
from lstmtext.errors import DataError

FORMATS = ("auto", "tsv", "csv", "jsonl", "folders")
UNLABELLED = "unsup"  # the folder of unlabelled reviews beside pos/ and neg/ in IMDb
# Training data with more classes than this, or with most classes seen once (from this many
# classes on), has its columns swapped or mis-named: the texts were read as labels.
MAX_CLASSES = 1000
FEW_CLASSES = 4


@dataclass(frozen=True)
class LabelledData:
    """Texts and their label names, row for row, with where each row came from (``file:line``)."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    origins: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The classes in head order: sorted, so the same data always gives the same order."""
        return tuple(sorted(set(self.labels)))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def __add__(self, other: LabelledData) -> LabelledData:
        return LabelledData(
            self.texts + other.texts, self.labels + other.labels, self.origins + other.origins
        )


@dataclass(frozen=True)
class Columns:
    """Which header columns (or JSON keys) hold the label and the text."""

    label: str = "label"
    text: str = "text"


DEFAULT_COLUMNS = Columns()


def read_labelled(
    sources: Sequence[str | Path] | str | Path,
    *,
    columns: Columns = DEFAULT_COLUMNS,
    known_labels: Sequence[str] | None = None,
    min_classes: int = 2,
    encoding: str = "utf-8",
    fmt: str = "auto",
) -> LabelledData:
    """Read and check labelled examples from one or more sources (`-` is stdin, and a name
    from the corpus catalogue, `sst2` or `imdb:test`, is that corpus's file).

    `known_labels`: the classes a trained model has; any other label is an error.
    `min_classes`: training needs two classes; evaluation may pass 1.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if not sources:
        raise DataError("no labelled data given")
    if fmt not in FORMATS:
        raise DataError(f"unknown labelled-data format {fmt!r} (one of {', '.join(FORMATS)})")
    # Training data (no model's labels to check against) is also checked for the signs of
    # columns read wrongly: a header that names other columns, labels that are texts.
    training = known_labels is None and min_classes >= 2
    data = LabelledData((), (), ())
    for source in sources:
        data = data + _read_one(str(source), columns, encoding, fmt, training)
    if known_labels is not None:
        known = set(known_labels)
        for label, origin in zip(data.labels, data.origins, strict=True):
            if label not in known:
                raise DataError(
                    f"{origin}: unknown label {label!r} (the model knows {', '.join(sorted(known))})"
                )
    if len(data) == 0:
        raise DataError(f"{', '.join(map(str, sources))}: no labelled examples")
    names = data.label_names
    if len(names) < min_classes:
        raise DataError(
            f"{', '.join(map(str, sources))}: only one class ({names[0]!r}) in {len(data)} examples; "
            f"a classifier needs at least {min_classes}"
        )
    if training:
        _check_labels_look_like_classes(data, columns)
    return data


def _check_labels_look_like_classes(data: LabelledData, columns: Columns) -> None:
    """Refuse label sets that are really texts (swapped or mis-named columns): otherwise a
    classifier trains with one class per example, and says nothing."""
    counts = Counter(data.labels)
    once = sum(1 for count in counts.values() if count == 1)
    if len(counts) > MAX_CLASSES or (len(counts) >= FEW_CLASSES and once * 2 > len(counts)):
        examples = ", ".join(repr(label[:30]) for label in list(counts)[:3])
        raise DataError(
            f"{data.origins[0].rsplit(':', 1)[0]}: {len(counts)} different labels ({examples}, ...), "
            f"{once} of them seen once: these look like texts, not classes; is {columns.label!r} "
            "the label column? name it with --label-column (and the text with --text-column)"
        )


def _read_one(source: str, columns: Columns, encoding: str, fmt: str, training: bool) -> LabelledData:
    path = Path(source)
    if source != "-" and not path.exists():
        path = _catalogue_file(source) or path
        source = str(path)
    if source != "-" and path.is_dir():
        if fmt not in ("auto", "folders"):
            raise DataError(f"{source} is a directory, not a {fmt} file")
        return _read_folders(path, encoding)
    if fmt == "folders":
        raise DataError(f"{source} is not a directory with one folder per label")
    text = read_source(source, encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    name = "<stdin>" if source == "-" else source
    if fmt == "auto":
        fmt = _guess_format(path, lines)
    if fmt == "jsonl":
        return _read_jsonl(name, lines, columns)
    if fmt == "csv":
        return _read_csv(name, text, columns)
    return _read_tsv(name, lines, columns, training)


def _catalogue_file(source: str) -> Path | None:
    """The file of a labelled corpus named in the catalogue (`sst2`, `sst2:test`), or None."""
    from lstmtext.corpora import catalogue, resolve  # only needed for names

    name, _, role = source.partition(":")
    entry = catalogue().get(name)
    if entry is None or entry.kind != "labelled":
        return None
    # The converted sentiment sets cannot be downloaded; resolve says where it looked.
    return resolve(name, allow_download=False).path(role or None)


def read_source(source: str, encoding: str) -> str:
    """A file or stdin (`-`) decoded, a leading BOM dropped, under lstmtext.data.reading's
    limits (binary, not the encoding, over 256 MiB): a failure is one line naming the file."""
    return read_input(source, encoding)


def _guess_format(path: Path, lines: list[str]) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"  # whatever its first line holds: a label may well start with "{"
    first = next((line for line in lines if line.strip()), "")
    return "jsonl" if first.lstrip().startswith("{") else "tsv"


def _header_index(name: str, header: list[str], columns: Columns, delimiter: str) -> tuple[int, int]:
    fields = [field.strip() for field in header]
    for wanted in (columns.label, columns.text):
        if wanted not in fields:
            raise DataError(
                f"{name}:1: no {wanted!r} column in the header (columns: {', '.join(fields)}); "
                "name the columns with --label-column / --text-column"
            )
    return fields.index(columns.label), fields.index(columns.text)


def _is_header(fields: list[str], columns: Columns) -> bool:
    names = {field.strip() for field in fields}
    return columns.label in names or columns.text in names


def _names_columns(fields: list[str], lines: list[str], first_row: int) -> bool:
    """Whether the first row of a headerless-looking TSV names columns (`sentiment<TAB>review`):
    every field a short identifier, its "label" found on no other row, while every label of
    the (at least 4) other rows occurs twice or more."""
    if len(fields) < 2 or not all(field.strip().replace("_", "").isalpha() for field in fields):
        return False
    if any(len(field.strip()) > 32 for field in fields):
        return False
    counts = Counter(line.split("\t", 1)[0].strip() for line in lines[first_row + 1 :] if line.strip())
    return sum(counts.values()) >= 4 and fields[0].strip() not in counts and min(counts.values()) >= 2


def _read_tsv(name: str, lines: list[str], columns: Columns, training: bool = False) -> LabelledData:
    texts: list[str] = []
    labels: list[str] = []
    origins: list[str] = []
    first_row = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first_row is None:
        raise DataError(f"{name}: no labelled examples (the file is empty)")
    header = lines[first_row].split("\t")
    has_header = len(header) >= 2 and _is_header(header, columns)
    if training and not has_header and _names_columns(header, lines, first_row):
        raise DataError(
            f"{name}:{first_row + 1}: looks like a header naming the columns "
            f"({', '.join(repr(field.strip()) for field in header)}), not an example; name the "
            f"label and text columns with --label-column and --text-column"
        )
    if has_header:
        label_index, text_index = _header_index(name, header, columns, "\t")
        width = len(header)
    else:
        label_index, text_index, width = 0, 1, 2
    for number, line in enumerate(lines, start=1):
        if number - 1 <= first_row and has_header or not line.strip():
            continue
        where = f"{name}:{number}"
        if "\t" not in line:
            if "," in line and number - 1 != first_row:
                raise DataError(f"{where}: no tab on this line but commas (mixed delimiters?)")
            raise DataError(f"{where}: missing text column (expected label<TAB>text)")
        # Headerless rows split once: the text may hold tabs. Header rows have fixed columns.
        fields = line.split("\t", 1) if not has_header else line.split("\t")
        if has_header and len(fields) < width:
            raise DataError(f"{where}: {len(fields)} columns where the header has {width}")
        texts.append(_text(fields[text_index], where))
        labels.append(_label(fields[label_index], where))
        origins.append(where)
    return LabelledData(tuple(texts), tuple(labels), tuple(origins))


def _read_csv(name: str, text: str, columns: Columns) -> LabelledData:
    reader = csv.reader(io.StringIO(text, newline=""))
    texts: list[str] = []
    labels: list[str] = []
    origins: list[str] = []
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{name}: no labelled examples (the file is empty)")
        if len(header) < 2 and "\t" in (header[0] if header else ""):
            raise DataError(f"{name}:1: the header is tab-separated in a CSV file (mixed delimiters?)")
        label_index, text_index = _header_index(name, header, columns, ",")
        start = reader.line_num + 1
        for row in reader:
            where = f"{name}:{start}"
            start = reader.line_num + 1
            if not row or not any(field.strip() for field in row):
                continue
            if len(row) < len(header):
                joined = ",".join(row)
                if "\t" in joined:
                    raise DataError(f"{where}: tabs where commas were expected (mixed delimiters?)")
                raise DataError(f"{where}: {len(row)} columns where the header has {len(header)}")
            texts.append(_text(row[text_index], where))
            labels.append(_label(row[label_index], where))
            origins.append(where)
    except csv.Error as error:
        raise DataError(f"{name}:{reader.line_num}: malformed CSV ({error})") from None
    return LabelledData(tuple(texts), tuple(labels), tuple(origins))


def _read_jsonl(name: str, lines: list[str], columns: Columns) -> LabelledData:
    texts: list[str] = []
    labels: list[str] = []
    origins: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object with {columns.text!r} and {columns.label!r}")
        if columns.text not in record:
            raise DataError(f"{where}: missing {columns.text!r} field")
        if columns.label not in record or record[columns.label] is None:
            raise DataError(f"{where}: missing label ({columns.label!r} field)")
        value = record[columns.text]
        if not isinstance(value, str):
            raise DataError(f"{where}: {columns.text!r} is not a string")
        label = record[columns.label]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{where}: label {label!r} is not a string or an integer")
        texts.append(_text(value, where))
        labels.append(_label(str(label), where))
        origins.append(where)
    return LabelledData(tuple(texts), tuple(labels), tuple(origins))


def _read_folders(directory: Path, encoding: str) -> LabelledData:
    folders = sorted(
        p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != UNLABELLED
    )
    if not folders:
        raise DataError(
            f"{directory}: no label folders (expected e.g. {directory}/pos/*.txt, {directory}/neg/*.txt)"
        )
    texts: list[str] = []
    labels: list[str] = []
    origins: list[str] = []
    for folder in folders:
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise DataError(f"{folder}: no .txt files in this label folder")
        for path in files:
            texts.append(_text(read_source(str(path), encoding), str(path)))
            labels.append(folder.name)
            origins.append(str(path))
    return LabelledData(tuple(texts), tuple(labels), tuple(origins))


def _text(value: str, where: str) -> str:
    if not value.strip():
        raise DataError(f"{where}: empty text")
    return value


def _label(value: str, where: str) -> str:
    label = value.strip()
    if not label:
        raise DataError(f"{where}: missing label")
    return label
