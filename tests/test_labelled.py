"""Labelled data readers: every input format, one-line errors that name the line, and a round trip."""

from __future__ import annotations

import csv
import io
import json
import string
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lstmtext.data.documents import Document, read_documents
from lstmtext.data.labelled import Columns, read_labelled
from lstmtext.errors import DataError, LstmTextError

ROWS = [("positive", "A joy from start to finish."), ("negative", "Dull, and far too long.")]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rows_of(data) -> list[tuple[str, str]]:
    return list(zip(data.labels, data.texts, strict=True))


# ---- each format


def test_headerless_tsv_as_in_shared_corpora(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "".join(f"{label}\t{text}\n" for label, text in ROWS))
    data = read_labelled(path)
    assert rows_of(data) == ROWS
    assert data.label_names == ("negative", "positive")
    assert data.origins == (f"{path}:1", f"{path}:2")
    assert data.counts() == {"negative": 1, "positive": 1}


def test_headerless_tsv_keeps_tabs_inside_the_text_and_reads_crlf(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "pos\tgood\tvery good\r\n\r\nneg\tbad\r\n")
    assert rows_of(read_labelled(path)) == [("pos", "good\tvery good"), ("neg", "bad")]


def test_tsv_with_a_header_in_any_column_order(tmp_path: Path) -> None:
    path = write(tmp_path / "h.tsv", "id\ttext\tlabel\n1\tLovely.\tpos\n2\tAwful.\tneg\n")
    assert rows_of(read_labelled(path)) == [("pos", "Lovely."), ("neg", "Awful.")]
    custom = write(tmp_path / "c.tsv", "review\tsentiment\nLovely.\tpos\nAwful.\tneg\n")
    data = read_labelled(custom, columns=Columns(label="sentiment", text="review"))
    assert rows_of(data) == [("pos", "Lovely."), ("neg", "Awful.")]
    assert data.origins[0] == f"{custom}:2"


def test_csv_with_a_header_and_quoted_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        'label,text\npos,"Great, truly great."\nneg,"Two\nlines, ""quoted"""\npos,Fine\n',
    )
    data = read_labelled(path)
    assert rows_of(data) == [("pos", "Great, truly great."), ("neg", 'Two\nlines, "quoted"'), ("pos", "Fine")]
    assert data.origins == (f"{path}:2", f"{path}:3", f"{path}:5")


def test_jsonl_by_suffix_or_by_first_line(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"text": text, "label": label}) + "\n" for label, text in ROWS)
    assert rows_of(read_labelled(write(tmp_path / "d.jsonl", lines))) == ROWS
    assert rows_of(read_labelled(write(tmp_path / "d.txt", lines))) == ROWS
    numeric = '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'
    assert rows_of(read_labelled(write(tmp_path / "n.jsonl", numeric))) == [("1", "good"), ("0", "bad")]


def test_a_folder_per_label_as_imdb_ships(tmp_path: Path) -> None:
    for label, text in ROWS:
        (tmp_path / label).mkdir()
        write(tmp_path / label / "0_9.txt", text)
    (tmp_path / "unsup").mkdir()  # IMDb's unlabelled reviews sit beside pos/ and neg/
    write(tmp_path / "unsup" / "0_0.txt", "no label")
    write(tmp_path / "README", "not a label folder")
    data = read_labelled(tmp_path)
    assert sorted(rows_of(data)) == sorted(ROWS)
    assert data.origins[0].endswith("0_9.txt")


def test_several_sources_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a.tsv", "pos\tgood\n")
    second = write(tmp_path / "b.jsonl", '{"text": "bad", "label": "neg"}\n')
    assert rows_of(read_labelled([first, second])) == [("pos", "good"), ("neg", "bad")]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"pos\tgood\nneg\tbad\n")))
    data = read_labelled("-")
    assert rows_of(data) == [("pos", "good"), ("neg", "bad")] and data.origins[0] == "<stdin>:1"


def test_shared_sentiment_corpora_read_whole() -> None:
    from .conftest import SHARED_CORPORA

    path = SHARED_CORPORA / "sst2" / "dev.tsv"
    if not path.exists():
        pytest.skip("../shared/corpora/sst2 is absent")
    data = read_labelled(path)
    assert len(data) == 872 and data.counts() == {"negative": 428, "positive": 444}
    by_name = read_labelled("sst2:valid")  # a catalogue name stands for its file
    assert by_name.texts == data.texts and by_name.origins[0].endswith("sst2/dev.tsv:1")


# ---- errors: one line, a DataError, naming the file and the line


def error_of(path: Path, **options) -> str:
    with pytest.raises(DataError) as caught:
        read_labelled(path, **options)
    message = str(caught.value)
    assert isinstance(caught.value, LstmTextError) and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.tsv", "pos\tgood\nneg\n", "missing.tsv:2: missing text column"),
        ("empty.tsv", "pos\tgood\nneg\t   \n", "empty.tsv:2: empty text"),
        ("nolabel.tsv", "pos\tgood\n\tno label here\n", "nolabel.tsv:2: missing label"),
        ("mixed.tsv", "pos\tgood\nneg,bad, really\n", "mixed.tsv:2: no tab on this line but commas"),
        ("short.tsv", "label\ttext\tid\npos\tgood\n", "short.tsv:2: 2 columns where the header has 3"),
        ("header.csv", "sentiment,text\npos,good\n", "header.csv:1: no 'label' column"),
        ("row.csv", "label,text\npos,good\nneg\n", "row.csv:3: 1 columns where the header has 2"),
        ("tabs.csv", "label,text\npos,good\nneg\tbad\n", "tabs.csv:3: tabs where commas were expected"),
        ("tabhead.csv", "label\ttext\npos\tgood\n", "tabhead.csv:1: the header is tab-separated"),
        ("empty.csv", 'label,text\npos,good\nneg,""\n', "empty.csv:3: empty text"),
        ("nojson.jsonl", '{"text": "a", "label": "p"}\n{"text": \n', "nojson.jsonl:2: not valid JSON"),
        ("notext.jsonl", '{"text": "a", "label": "p"}\n{"label": "n"}\n', "notext.jsonl:2: missing 'text'"),
        ("nolab.jsonl", '{"text": "a", "label": "p"}\n{"text": "b"}\n', "nolab.jsonl:2: missing label"),
        ("badlab.jsonl", '{"text": "a", "label": [1]}\n', "badlab.jsonl:1: label [1] is not a string"),
        ("blank.tsv", "\n\n", "no labelled examples"),
    ],
)
def test_malformed_rows_name_their_line(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path / name, content))


def test_unknown_label_single_class_and_bad_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "eval.tsv", "positive\tgood\nmeh\tso-so\n")
    message = error_of(path, known_labels=["negative", "positive"], min_classes=1)
    assert f"{path}:2: unknown label 'meh'" in message and "negative, positive" in message
    single = write(tmp_path / "single.tsv", "positive\tgood\npositive\tgreat\n")
    assert "only one class ('positive') in 2 examples" in error_of(single)
    assert rows_of(read_labelled(single, min_classes=1)) == [("positive", "good"), ("positive", "great")]
    broken = tmp_path / "latin1.tsv"
    broken.write_bytes(b"pos\tgood\nneg\tna\xefve\n")
    assert "latin1.tsv:2: not valid utf-8" in error_of(broken)
    assert "no such file" in error_of(tmp_path / "absent.tsv")
    (tmp_path / "empty_folder").mkdir()
    assert "no label folders" in error_of(tmp_path / "empty_folder")
    (tmp_path / "labels" / "pos").mkdir(parents=True)
    assert "no .txt files in this label folder" in error_of(tmp_path / "labels")


def test_train_cli_reports_bad_data_on_one_line(cli, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.tsv", "positive\tgood\nnegative\n")
    result = cli(["train", "--task", "classify", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr == f"lstmtext: error: {path}:2: missing text column (expected label<TAB>text)\n"


# ---- documents to classify


def test_documents_from_files_folders_tsv_and_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    review = write(tmp_path / "review.txt", "Loved it.\nWould watch again.\n")
    folder = tmp_path / "reviews"
    (folder / "sub").mkdir(parents=True)
    write(folder / "b.txt", "Bad.")
    write(folder / "sub" / "a.txt", "Good.")
    write(folder / "notes.md", "ignored")
    table = write(tmp_path / "t.tsv", "positive\tGreat.\nnegative\tPoor.\n")
    headed = write(tmp_path / "h.tsv", "id\tlabel\ttext\n7\tpositive\tFine.\n")  # both columns named
    documents = list(read_documents([review, folder, table, headed]))
    assert documents == [
        Document(str(review), "Loved it.\nWould watch again.\n"),
        Document(str(folder / "b.txt"), "Bad."),
        Document(str(folder / "sub" / "a.txt"), "Good."),
        Document(f"{table}:1", "Great."),
        Document(f"{table}:2", "Poor."),
        Document(f"{headed}:2", "Fine."),
    ]
    assert [d.text for d in read_documents([review], lines=True)] == ["Loved it.", "Would watch again."]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"One.\nTwo.\n")))
    assert list(read_documents(["-"])) == [Document("<stdin>", "One.\nTwo.\n")]


def test_documents_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty, nothing to classify"):
        list(read_documents([write(tmp_path / "e.txt", " \n")]))
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="no .txt files"):
        list(read_documents([tmp_path / "d"]))
    with pytest.raises(DataError, match="no such file"):
        list(read_documents([tmp_path / "absent.txt"]))


# ---- property: whatever rows are written in a format, reading gives them back


def _clean_label(value: str) -> bool:
    return value == value.strip() and value not in ("label", "text") and value != ""


printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
labels = st.text(alphabet=printable, min_size=1, max_size=8)
# A NUL makes a file binary data, refused when read (lstmtext.data.reading): no text holds one.
texts = st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1, max_size=40).filter(
    lambda t: t.strip() != "" and not t.startswith("\ufeff")
)
rows = st.lists(st.tuples(labels.filter(_clean_label), texts), min_size=1, max_size=12)
folder_labels = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=8)

RELAXED = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@RELAXED
@given(rows=rows)
def test_tsv_round_trip(rows: list[tuple[str, str]]) -> None:
    # A headerless TSV row is label<TAB>text up to the line end: no line breaks in the text,
    # and nothing in the first row may look like a header.
    rows = [(label, text) for label, text in rows if "\t" not in label]
    assume(rows and all("\n" not in t and "\r" not in t for _, t in rows))
    assume(not {"label", "text"} & {f.strip() for f in rows[0][1].split("\t")})
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "rows.tsv", "".join(f"{label}\t{text}\n" for label, text in rows))
        assert rows_of(read_labelled(path, min_classes=1)) == rows


@RELAXED
@given(rows=rows)
def test_csv_round_trip(rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["label", "text"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_bytes(buffer.getvalue().encode("utf-8"))
        assert rows_of(read_labelled(path, min_classes=1)) == rows


@RELAXED
@given(rows=rows)
def test_jsonl_round_trip(rows: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        lines = "".join(json.dumps({"label": label, "text": text}) + "\n" for label, text in rows)
        path = write(Path(folder) / "rows.jsonl", lines)
        assert rows_of(read_labelled(path, min_classes=1)) == rows


@RELAXED
@given(rows=st.lists(st.tuples(folder_labels, texts), min_size=1, max_size=8))
def test_folder_round_trip(rows: list[tuple[str, str]]) -> None:
    rows = [(label, text) for label, text in rows if label != "unsup"]
    assume(rows)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for number, (label, text) in enumerate(rows):
            (root / label).mkdir(exist_ok=True)
            (root / label / f"{number:03d}.txt").write_bytes(text.encode("utf-8"))
        expected = sorted(rows)  # folders in name order, files in name order within each
        assert sorted(rows_of(read_labelled(root, min_classes=1))) == expected
