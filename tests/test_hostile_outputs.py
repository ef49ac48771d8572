"""Hostile inputs, round three (last part): what reaches the terminal, the exported files, the
figures of evaluate and the reading of TSV, labels and signals. Each test runs the CLI on tiny
data; the embedded sentiment classifier stands in where a trained model is needed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstmtext.pretrained import default_classifier_dir
from tests.conftest import error_line, random_checkpoint, run_cli, snapshot, tiny_tokenizer, write_labelled

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


# ---- 20. export keeps a classifier's temperature


def test_export_json_holds_the_temperature_that_calibrates_the_logits(tmp_path: Path) -> None:
    import torch
    from tokenizers import Tokenizer

    from lstmtext.config import ModelConfig

    tokenizer = tiny_tokenizer("word")
    shape = ModelConfig(tokenizer.vocab_size, embedding_dim=8, hidden_size=12, task="classify", num_classes=2)
    model = random_checkpoint(tmp_path / "model", shape, tokenizer, labels=("negative", "positive"), seed=5)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"temperature": 2.5}))
    result = run_cli(["export", "-m", str(model), "--format", "pt2", str(tmp_path / "x")])
    assert result.exit_code == 0, result.stderr
    info = json.loads((tmp_path / "x" / "export.json").read_text())
    assert info["temperature"] == 2.5 and info["labels"] == ["negative", "positive"]
    # What a runtime computes from export.json alone is what classify shows.
    text = "the question is whether to suffer"
    ids = Tokenizer.from_file(str(tmp_path / "x" / info["tokenizer"]["file"])).encode(text).ids
    step = torch.export.load(tmp_path / "x" / info["file"]).module()
    with torch.no_grad():
        logits = step(torch.tensor([ids]), torch.tensor([len(ids)]))
    probabilities = torch.softmax(logits / info["temperature"], dim=-1)[0].tolist()
    shown = run_cli(["classify", "-m", str(model), "--json", "-"], input=text)
    assert shown.exit_code == 0, shown.stderr
    expected = json.loads(shown.stdout)["probabilities"]
    assert probabilities == pytest.approx([expected["negative"], expected["positive"]], abs=1e-5)


# ---- 21. classify takes a TSV's first row for a header only when it names both columns


def test_a_first_row_whose_text_is_the_word_text_is_classified(tmp_path: Path) -> None:
    rows = write_labelled(tmp_path / "h.tsv", [("positive", "text"), ("negative", "awful film")])
    result = run_cli(["classify", str(rows), "--json"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [f"{rows}:1", f"{rows}:2"]


def test_a_header_naming_the_label_and_text_columns_is_skipped(tmp_path: Path) -> None:
    for header, row in (
        ("label\ttext", "negative\tawful film"),
        ("id\ttext\tlabel", "7\tawful film\tnegative"),
    ):
        rows = tmp_path / "with_header.tsv"
        rows.write_text(f"{header}\n{row}\n", encoding="utf-8")
        result = run_cli(["classify", str(rows), "--json"])
        assert result.exit_code == 0, result.stderr
        assert [json.loads(line)["input"] for line in result.stdout.splitlines()] == [f"{rows}:2"]


# ---- 22. evaluate on data of one class: macro figures over the classes present, and a note


def test_evaluate_on_one_class_averages_over_the_classes_present(tmp_path: Path) -> None:
    rows = [("positive", f"A wonderful, moving film, beautifully acted. I loved it {i}.") for i in range(20)]
    data = write_labelled(tmp_path / "p.tsv", rows)
    model = str(default_classifier_dir())
    result = run_cli(["evaluate", "-m", model, str(data)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "lstmtext: note: class negative is absent from the data: "
        "macro-F1 and average recall are over positive only"
    ]
    figures = dict(re.findall(r"(accuracy|macro-F1|average recall) ([0-9.]+)", result.stdout))
    accuracy = float(figures["accuracy"])
    assert float(figures["average recall"]) == pytest.approx(accuracy)
    assert float(figures["macro-F1"]) == pytest.approx(2 * accuracy / (1 + accuracy), abs=1e-4)
    negative_row = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["negative"])
    assert "0.000" not in negative_row  # no recall claimed for a class the data lacks

    result = run_cli(["evaluate", "-m", model, str(data), "--json"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["absent"] == ["negative"] and metrics["per_class"]["negative"]["recall"] is None
    assert metrics["macro_f1"] == pytest.approx(metrics["per_class"]["positive"]["f1"])
    assert metrics["average_recall"] == pytest.approx(metrics["per_class"]["positive"]["recall"])


# ---- 23. a checkpoint whose labels repeat is refused when it is read


def test_a_checkpoint_with_a_label_given_twice_is_refused(tmp_path: Path) -> None:
    model = Path(shutil.copytree(default_classifier_dir(), tmp_path / "model"))
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"labels": ["negative", "negative"]}))
    text = tmp_path / "t.txt"
    text.write_text("A fine film.", encoding="utf-8")
    before = snapshot(model)
    for command in (["classify", "-m", str(model), "--json", str(text)], ["info", str(model)]):
        result = run_cli(command)
        assert result.exit_code == 1, result.stdout
        line = error_line(result.stderr)
        assert "'negative' is given twice" in line and "config.json" in line
        assert result.stdout == ""
    assert snapshot(model) == before


# ---- 24. a signal while training still reads its data stops it at once


def _open_for_writing_once_read(fifo: Path, process: subprocess.Popen[str]) -> int:
    """The FIFO's writing end, opened once `process` has opened it to read its corpus."""
    deadline = time.monotonic() + 120  # the child imports torch first: seconds on a busy machine
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        time.sleep(0.05)
    raise AssertionError(f"lstmtext train never read {fifo}: {process.communicate()}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_training_reads_its_data_stops_it_at_once(
    tmp_path: Path, signum: int, code: int
) -> None:
    fifo, out = tmp_path / "corpus.fifo", tmp_path / "run"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "lstmtext", "train", str(fifo), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        writer = _open_for_writing_once_read(fifo, process)
        os.write(writer, b"To be, or not to be, that is the question:\n")  # and more to come, never
        time.sleep(0.5)
        process.send_signal(signum)
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 5
    finally:
        process.kill()
        if writer is not None:
            os.close(writer)
    assert process.returncode == code, stderr
    assert (stdout, stderr) == ("", "lstmtext: interrupted\n")
    assert not out.exists()  # nothing written
