"""What a command writes never costs a user a file or a setting that was there before:
--overwrite clears only an lstmtext run, --html/--png keep what the path is, and calibrate
keeps a stored temperature the data cannot replace."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from .conftest import error_line, run_cli, snapshot, write_labelled

CLASSIFIER_ARGS = [
    "--level", "word", "--layers", "1", "--hidden", "8", "--embed", "4", "--batch-size", "8",
    "--max-steps", "2", "--eval-every", "2", "--val-fraction", "0", "--threads", "1",
]  # fmt: skip


def labelled(path: Path) -> Path:
    rows = [("positive", "a fine and moving film"), ("negative", "a dull and tired film")] * 10
    return write_labelled(path, rows)


def test_overwrite_refuses_a_folder_whose_files_are_not_a_runs(tmp_path: Path) -> None:
    data = labelled(tmp_path / "d.tsv")
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text('{"learning_rate": 0.1}\n')
    (folder / "checkpoints" / "model_v1.bin").write_bytes(b"weights")
    before = snapshot(folder)
    result = run_cli(["train-classifier", str(data), "--out", str(folder), "--overwrite", *CLASSIFIER_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "not an lstmtext config" in line and "model_v1.bin" in line
    assert snapshot(folder) == before


def test_overwrite_refuses_our_names_without_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "best.json").write_text('{"my": "scores"}\n')
    result = run_cli(["train-classifier", str(labelled(tmp_path / "d.tsv")), "--out", str(folder),
                      "--overwrite", *CLASSIFIER_ARGS])  # fmt: skip
    assert result.exit_code == 1 and "does not hold an lstmtext run" in error_line(result.stderr)
    assert (folder / "best.json").read_text() == '{"my": "scores"}\n'


def test_overwrite_still_replaces_a_run_and_keeps_other_files(tmp_path: Path) -> None:
    data = labelled(tmp_path / "d.tsv")
    run = tmp_path / "run"
    assert run_cli(["train-classifier", str(data), "--out", str(run), *CLASSIFIER_ARGS]).exit_code == 0
    (run / "notes.txt").write_text("mine")
    result = run_cli(["train-classifier", str(data), "--out", str(run), "--overwrite", *CLASSIFIER_ARGS])
    assert result.exit_code == 0, result.stderr
    assert (run / "notes.txt").read_text() == "mine" and (run / "model.safetensors").is_file()


@pytest.mark.parametrize("command", ["train", "train-classifier", "average", "export"])
def test_an_empty_out_is_refused_not_taken_for_the_current_folder(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    args = {
        "train": ["train", "x.txt", "--out", ""],
        "train-classifier": ["train-classifier", "x.tsv", "--out", ""],
        "average": ["average", "a", "b", "--out", ""],
        "export": ["export", "", "--model", "m"],
    }[command]
    result = run_cli(args)
    assert result.exit_code == 2
    assert "is empty" in result.stderr
    assert (tmp_path / "config.json").read_text() == "{}"


@pytest.fixture
def review(tmp_path: Path) -> Path:
    path = tmp_path / "r.txt"
    path.write_text("A fine film with a great cast.\n")
    return path


def test_html_into_a_symlink_writes_its_target_and_keeps_the_link(review: Path, tmp_path: Path) -> None:
    link = tmp_path / "page.html"
    link.symlink_to("target.html")
    result = run_cli(["classify", str(review), "--explain", "--html", str(link)])
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and "<html" in (tmp_path / "target.html").read_text().lower()


def test_html_into_a_device_writes_into_it(review: Path) -> None:
    result = run_cli(["classify", str(review), "--explain", "--html", os.devnull])
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_html_into_a_fifo_keeps_the_fifo(review: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so the writer's open does not block
    try:
        result = run_cli(["classify", str(review), "--explain", "--html", str(fifo)])
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert b"<html" in os.read(reader, 1 << 16).lower()
    finally:
        os.close(reader)


def test_write_errors_name_the_users_path_not_a_temp_file(review: Path, tmp_path: Path) -> None:
    folder = tmp_path / "adir"
    folder.mkdir()
    result = run_cli(["classify", str(review), "--explain", "--html", str(folder)])
    line = error_line(result.stderr)
    assert result.exit_code == 1 and str(folder) in line and ".tmp" not in line
    assert list(folder.iterdir()) == []


@pytest.fixture
def sentiment_copy(tmp_path: Path) -> Path:
    from lstmtext.pretrained import default_classifier_dir

    copy = tmp_path / "m"
    shutil.copytree(default_classifier_dir(), copy)
    return copy


def stored_temperature(model: Path) -> float:
    return json.loads((model / "config.json").read_text())["temperature"]


def test_calibrate_on_one_text_keeps_the_stored_temperature(sentiment_copy: Path, tmp_path: Path) -> None:
    before = stored_temperature(sentiment_copy)
    one = write_labelled(
        tmp_path / "one.tsv", [("positive", "A joy from start to finish, and the cast is superb.")]
    )
    result = run_cli(["calibrate", "-m", str(sentiment_copy), str(one)])
    assert result.exit_code == 1
    assert "stored temperature is kept" in error_line(result.stderr)
    assert stored_temperature(sentiment_copy) == before


def test_calibrate_on_texts_all_right_keeps_the_stored_temperature(
    sentiment_copy: Path, tmp_path: Path
) -> None:
    before = stored_temperature(sentiment_copy)
    rows = [("positive", f"A joy from start to finish, and the cast is superb, part {i}.") for i in range(15)]
    rows += [("negative", f"Dull, tedious and badly acted; a waste of time, part {i}.") for i in range(15)]
    easy = write_labelled(tmp_path / "easy.tsv", rows)
    result = run_cli(["calibrate", "-m", str(sentiment_copy), str(easy)])
    assert result.exit_code == 1
    assert "all 30 texts right" in error_line(result.stderr)
    assert stored_temperature(sentiment_copy) == before
