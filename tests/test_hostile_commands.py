"""Hostile inputs to the commands: endless and huge inputs, bad teacher answers, resumes with other
options, unrelated runs averaged, pathological regexes, huge --threads, escapes in file names and
Ctrl-C before training. Each test runs the CLI on tiny data and checks one line and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lstmtext.data import reading
from tests.conftest import TINY_CLASSIFIER_ARGS, error_line, run_cli, snapshot

TEACHER_ARGS = [*TINY_CLASSIFIER_ARGS[:-6], "--max-steps", "2"]  # no need to learn: the answers fail first


def _teacher_file(path: Path, reviews: Path, answer=None) -> Path:  # type: ignore[no-untyped-def]
    """A teacher's answers for every text of `reviews`, `answer(text)` each (default 0.5 / 0.5)."""
    lines = []
    for row in reviews.read_text(encoding="utf-8").splitlines():
        text = row.split("\t", 1)[1]
        probabilities = answer(text) if answer else {"negative": 0.5, "positive": 0.5}
        lines.append(json.dumps({"text": text, "probabilities": probabilities}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train_with_teacher(reviews: Path, teacher: Path | str, out: Path) -> tuple[int, str]:
    result = run_cli(
        ["train-classifier", str(reviews), "--out", str(out), "--teacher", str(teacher), *TEACHER_ARGS]
    )
    return result.exit_code, result.stderr


# ---- 1. one read limit for every text input: binary, not UTF-8 and oversized inputs refused early


def test_classify_refuses_an_endless_binary_input_at_its_first_chunk() -> None:
    result = run_cli(["classify", "/dev/zero"])
    assert result.exit_code == 1
    assert "binary data (a NUL byte at byte 0)" in error_line(result.stderr)


def test_classify_refuses_a_text_over_the_read_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "MAX_TEXT_BYTES", 3 * reading.CHUNK_BYTES)
    big = tmp_path / "big.txt"
    big.write_bytes(b"a fine film. " * (5 * reading.CHUNK_BYTES // 13))
    result = run_cli(["classify", str(big)])
    assert result.exit_code == 1
    assert "over 3 MiB" in error_line(result.stderr)


def test_inspect_refuses_an_endless_binary_input(tiny_lm: Path) -> None:
    result = run_cli(["inspect", "-m", str(tiny_lm), "/dev/zero"])
    assert result.exit_code == 1
    assert "binary data" in error_line(result.stderr)


def test_training_data_that_is_not_utf8_is_refused_with_line_and_byte(tmp_path: Path) -> None:
    data = tmp_path / "l.tsv"
    data.write_bytes(b"positive\tgood\nnegative\tbad \xff film\n")
    result = run_cli(["train-classifier", str(data), "--out", str(tmp_path / "c"), *TEACHER_ARGS])
    assert result.exit_code == 1
    assert f"{data}:2: not valid utf-8 (byte 27)" in error_line(result.stderr)


def test_a_teacher_file_over_the_read_limit_is_refused(
    tiny_reviews: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "MAX_TEXT_BYTES", reading.CHUNK_BYTES)
    teacher = tmp_path / "one-line.jsonl"
    teacher.write_bytes(b'{"text": "' + b"a" * (3 * reading.CHUNK_BYTES) + b'"}')
    code, stderr = _train_with_teacher(tiny_reviews, teacher, tmp_path / "c")
    assert code == 1
    assert "over 1 MiB" in error_line(stderr)


# ---- 4. no "internal error": teacher files not UTF-8 or nested deep, stdin closed


def test_a_teacher_file_that_is_not_utf8_is_one_line(tiny_reviews: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "answers.jsonl"
    teacher.write_bytes(b'{"text": "caf\xe9", "probabilities": {"negative": 0.5, "positive": 0.5}}\n')
    code, stderr = _train_with_teacher(tiny_reviews, teacher, tmp_path / "c")
    assert code == 1
    assert f"{teacher}:1: not valid utf-8" in error_line(stderr)


def test_a_teacher_line_nested_thousands_deep_is_one_line(tiny_reviews: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "answers.jsonl"
    teacher.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    code, stderr = _train_with_teacher(tiny_reviews, teacher, tmp_path / "c")
    assert code == 1
    line = error_line(stderr)
    assert "internal error" not in line and f"{teacher}:1:" in line


def test_classify_stdin_closed_is_one_line() -> None:
    done = subprocess.run(
        ["bash", "-c", f"exec {sys.executable} -m lstmtext classify - <&-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "standard input is closed" in error_line(done.stderr)


# ---- 5. teacher answers: numbers only, one answer a text, a missing file named as a file


@pytest.mark.parametrize("value", ['"0.5"', "true"])
def test_teacher_probabilities_that_are_not_json_numbers_are_refused(
    value: str, tiny_reviews: Path, tmp_path: Path
) -> None:
    teacher = _teacher_file(tmp_path / "answers.jsonl", tiny_reviews)
    lines = teacher.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"negative": 0.5', f'"negative": {value}')
    teacher.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, stderr = _train_with_teacher(tiny_reviews, teacher, tmp_path / "c")
    assert code == 1
    assert f"{teacher}:3: the probability {value} is not a JSON number" in error_line(stderr)


def test_a_text_with_two_different_teacher_answers_is_refused(tiny_reviews: Path, tmp_path: Path) -> None:
    teacher = _teacher_file(tmp_path / "answers.jsonl", tiny_reviews)
    first = json.loads(teacher.read_text(encoding="utf-8").splitlines()[0])
    first["probabilities"] = {"negative": 0.9, "positive": 0.1}
    with teacher.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(first) + "\n")
    code, stderr = _train_with_teacher(tiny_reviews, teacher, tmp_path / "c")
    assert code == 1
    assert "another answer for the text of line 1" in error_line(stderr)


def test_a_missing_teacher_file_is_named_as_a_file(tiny_reviews: Path, tmp_path: Path) -> None:
    code, stderr = _train_with_teacher(tiny_reviews, "/nonexistent/answers.jsonl", tmp_path / "c")
    assert code == 1
    line = error_line(stderr)
    assert "answers file /nonexistent/answers.jsonl does not exist" in line
    assert "model directory" not in line


# ---- 10. --threads beyond any machine is a usage error, not a segfault


@pytest.mark.parametrize("command", [["classify", "review.txt"], ["train", "corpus.txt"], ["generate"]])
def test_threads_beyond_the_cap_is_a_usage_error(command: list[str], tmp_path: Path) -> None:
    result = run_cli([*command, "--threads", "100000"])
    assert result.exit_code == 2
    assert "--threads" in result.stderr and "256" in result.stderr


def test_classify_with_threads_at_the_cap_works(tmp_path: Path) -> None:
    review = tmp_path / "review.txt"
    review.write_text("A fine film.", encoding="utf-8")
    result = run_cli(["classify", str(review), "--threads", "256", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["label"]


# ---- 11. a file name's terminal escapes are shown as \x.., never sent to the terminal


def test_escapes_in_a_missing_file_name_are_shown_escaped(tmp_path: Path) -> None:
    name = str(tmp_path / "\x1b]0;PWNED\x07\x1b[2Jmissing.txt")
    result = run_cli(["classify", name])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b]0;PWNED\\x07\\x1b[2Jmissing.txt: no such file" in line


# ---- 3. a classifier's --resume refuses options that differ from the run's, as an LM's does

RESUME_ARGS = ["--level", "word", "--layers", "1", "--embed", "8", "--batch-size", "8", "--max-steps", "4"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--hidden", "64"), ("--layers", "2"), ("--level", "char"), ("--batch-size", "4"), ("--teacher", "t")],
)
def test_classifier_resume_refuses_an_option_that_differs_from_the_run(
    option: str, value: str, tiny_reviews: Path, tmp_path: Path
) -> None:
    out = tmp_path / "c"
    first = run_cli(
        ["train-classifier", str(tiny_reviews), "--out", str(out), "--hidden", "16", *RESUME_ARGS]
    )
    assert first.exit_code == 0, first.stderr
    if value == "t":
        value = str(_teacher_file(tmp_path / "answers.jsonl", tiny_reviews))
    before = snapshot(out)
    args = ["train-classifier", str(tiny_reviews), "--out", str(out), "--resume", "--hidden", "16"]
    args += [*RESUME_ARGS, "--max-steps", "8", option, value]
    result = run_cli(args)
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert "cannot resume with" in line and "the run in --out was trained with" in line
    assert snapshot(out) == before


def test_classifier_resume_with_the_same_options_continues(tiny_reviews: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    first = run_cli(
        ["train-classifier", str(tiny_reviews), "--out", str(out), "--hidden", "16", *RESUME_ARGS]
    )
    assert first.exit_code == 0, first.stderr
    args = ["train-classifier", str(tiny_reviews), "--out", str(out), "--resume", *RESUME_ARGS]
    result = run_cli([*args, "--hidden", "16", "--max-steps", "8"])
    assert result.exit_code == 0, result.stderr


# ---- 9. average refuses checkpoints of different runs, saying what differs


def _tiny_run(tmp_path: Path, name: str, text: str, seed: str) -> Path:
    from tests.conftest import TINY_TRAIN_ARGS

    corpus = tmp_path / f"{name}.txt"
    corpus.write_text(text, encoding="utf-8")
    out = tmp_path / name
    result = run_cli(["train", str(corpus), "--out", str(out), *TINY_TRAIN_ARGS, "--random-state", seed])
    assert result.exit_code == 0, result.stderr
    return out


def test_average_refuses_runs_trained_on_different_data(tiny_lm: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY_TEXT

    other = _tiny_run(tmp_path, "other", TINY_TEXT.replace("be", "do").replace("the", "our"), "7")
    result = run_cli(["average", str(tiny_lm), str(other), "--out", str(tmp_path / "avg")])
    assert result.exit_code == 1
    assert "trained on other data than" in error_line(result.stderr)
    assert not (tmp_path / "avg").exists()


def test_average_says_which_seed_differs(tiny_lm: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY_TEXT

    other = _tiny_run(tmp_path, "seed8", TINY_TEXT, "8")
    result = run_cli(["average", str(tiny_lm), str(other), "--out", str(tmp_path / "avg")])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "another run" in line and "--random-state 8, not 7" in line
    assert "not the same model" not in line


def test_average_of_one_runs_checkpoints_still_works(tiny_lm: Path, tmp_path: Path) -> None:
    step = tiny_lm / "checkpoints" / "step-00000010"
    result = run_cli(["average", str(tiny_lm), str(step), "--out", str(tmp_path / "avg")])
    assert result.exit_code == 0, result.stderr


# ---- 7. inspect --find: a pathological regex is stopped and refused in one line


def test_a_pathological_find_pattern_is_stopped_in_one_line(
    tiny_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from lstmtext.core import pattern_search

    monkeypatch.setattr(pattern_search, "SEARCH_SECONDS", 1.0)
    monkeypatch.setattr(pattern_search.match_spans, "__defaults__", (1.0,))
    started = time.monotonic()
    result = run_cli(["inspect", "-m", str(tiny_lm), "--text", "a" * 1900 + "!", "--find", "(a+)+$"])
    assert time.monotonic() - started < 30
    assert result.exit_code == 2
    assert "was still searching 1,901 characters after 1 s" in error_line(result.stderr)


def test_an_ordinary_find_pattern_still_ranks_units(tiny_lm: Path) -> None:
    result = run_cli(
        ["inspect", "-m", str(tiny_lm), "--text", "To be, or not to be", "--find", "be", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["find"]["units"]


# ---- 8. inspect reads only what it inspects, and --max-tokens is capped


def test_inspect_reads_only_the_beginning_of_a_big_file(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lstmtext.cli import inspect as inspect_command

    asked: list[int] = []

    def spy(source: str, size: int, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(size)
        return reading.read_prefix(source, size, *args, **kwargs)

    monkeypatch.setattr(inspect_command, "read_prefix", spy)
    big = tmp_path / "big.txt"
    big.write_text("To be, or not to be, that is the question:\n" * 120_000, encoding="utf-8")  # 5 MB
    result = run_cli(["inspect", "-m", str(tiny_lm), str(big), "--max-tokens", "100", "--json"])
    assert result.exit_code == 0, result.stderr
    assert asked == [100 * inspect_command.BYTES_PER_TOKEN]
    assert len(json.loads(result.stdout)["tokens"]) == 100
    assert "inspecting the first 100 tokens only" in result.stderr


def test_inspect_refuses_max_tokens_beyond_the_cap(tiny_lm: Path) -> None:
    result = run_cli(["inspect", "-m", str(tiny_lm), "--text", "To be", "--max-tokens", "100000"])
    assert result.exit_code == 2
    assert "--max-tokens" in result.stderr and "10000" in result.stderr


# ---- 13. Ctrl-C before a classifier's first step: exit 130 at once, nothing trained kept


def test_ctrl_c_while_the_data_is_prepared_ends_at_once_and_writes_nothing(
    tiny_reviews: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    from lstmtext.data import tokenizer

    train = tokenizer.TextTokenizer.train

    def interrupted_while_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
        return train(*args, **kwargs)

    monkeypatch.setattr(tokenizer.TextTokenizer, "train", interrupted_while_training)
    out = tmp_path / "c"
    result = run_cli(["train-classifier", str(tiny_reviews), "--out", str(out), *TEACHER_ARGS])
    assert result.exit_code == 130
    assert result.stderr.strip() == "lstmtext: interrupted"
    assert not out.exists() or not any(out.rglob("*.safetensors"))


def test_ctrl_c_before_the_first_step_says_nothing_was_trained(
    tiny_reviews: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lstmtext.training.loop import Trainer

    monkeypatch.setattr(Trainer, "_should_stop", lambda self: "interrupted")
    out = tmp_path / "c"
    result = run_cli(["train-classifier", str(tiny_reviews), "--out", str(out), *TEACHER_ARGS])
    assert result.exit_code == 130
    line = error_line(result.stderr)
    assert "interrupted before the first step: nothing was trained" in line
    assert "best classifier" not in line
    assert not any(out.rglob("*.safetensors")) and not (out / "config.json").exists()


# ---- 12. info reads metrics.jsonl as a log anyone can edit


@pytest.mark.parametrize("elapsed", ["null", '"an hour"', "true", "1e999"])
def test_info_survives_a_metrics_record_of_the_wrong_types(run_dir: Path, elapsed: str) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(f'{{"step": "five", "elapsed": {elapsed}}}\n')
    result = run_cli(["info", str(run_dir), "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] is None and "elapsed_minutes" not in summary


# ---- 14. every reader of a corpus stops at an endless input


@pytest.mark.parametrize("command", ["train", "evaluate", "calibrate"])
def test_an_endless_input_is_refused_at_its_first_chunk(
    command: str, tiny_lm: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    args = {
        "train": ["train", "/dev/zero", "--out", str(tmp_path / "run")],
        "evaluate": ["evaluate", "-m", str(tiny_lm), "/dev/zero"],
        "calibrate": ["calibrate", "-m", str(tiny_classifier), "/dev/zero"],
    }[command]
    done = subprocess.run(
        [sys.executable, "-m", "lstmtext", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "binary" in error_line(done.stderr)
    assert not (tmp_path / "run").exists()


def test_an_endless_text_on_stdin_is_refused_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmtext.data import sources

    monkeypatch.setattr(sources, "MAX_READ_BYTES", 3 << 20)
    with pytest.raises(sources.CorpusError, match="more than 3 MiB"):
        sources.read_text(["-"], stdin=_Endless())


class _Endless:
    """A text stream that never ends, as `yes |` gives."""

    class buffer:  # noqa: N801 - the attribute name a text stream has
        @staticmethod
        def read(size: int = -1) -> bytes:
            return b"y\n" * (max(size, 2) // 2)
