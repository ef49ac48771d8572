"""Hostile and careless inputs (issue 25): no silent data loss, no unbounded work, one line
on stderr for every error, through the real CLI (a real process where signals matter)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import (
    BAD,
    GOOD,
    TINY_TEXT,
    TINY_TRAIN_ARGS,
    error_line,
    run_cli,
    snapshot,
    write_labelled,
)

WORD_CLASSIFIER_ARGS = [
    "--task", "classify", "--level", "word", "--layers", "1", "--hidden", "8", "--embed", "4",
    "--batch-size", "8", "--max-steps", "4", "--eval-every", "4", "--val-fraction", "0.2",
    "--threads", "1", "--random-state", "3",
]  # fmt: skip


def longer(args: list[str], steps: str) -> list[str]:
    return [a if a != "20" else steps for a in args]


def reviews(path: Path, rows: int = 40, header: str | None = None, swap: bool = False) -> Path:
    rng = random.Random(0)
    labelled = []
    for index in range(rows):
        label, words = ("positive", GOOD) if index % 2 else ("negative", BAD)
        text = f"the film was {rng.choice(words)} and {rng.choice(words)} number {index}"
        labelled.append((text, label) if swap else (label, text))
    return write_labelled(path, labelled, header)


# ---- 1. a new run never lands on top of a finished one


def test_training_into_a_finished_run_is_refused_and_overwrite_clears_it(run_dir: Path) -> None:
    corpus = run_dir.parent / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    before = snapshot(run_dir)
    result = run_cli(["train", str(corpus), "--out", str(run_dir), *TINY_TRAIN_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "already holds files" in line and "--resume" in line and "--overwrite" in line
    assert snapshot(run_dir) == before  # model, best.json, metrics, step checkpoints: all as they were

    # --overwrite with data that cannot be read: the old run stays (it is cleared only once the
    # new one has its data).
    empty = run_dir.parent / "empty.txt"
    empty.write_text("")
    result = run_cli(["train", str(empty), "--out", str(run_dir), "--overwrite", *TINY_TRAIN_ARGS])
    assert result.exit_code == 1 and snapshot(run_dir) == before

    # --overwrite clears the old run first: no step checkpoint of it stays to be averaged with the new.
    old_steps = {p.name for p in (run_dir / "checkpoints").glob("step-*")}
    assert old_steps == {"step-00000010", "step-00000020"}
    args = [*longer(TINY_TRAIN_ARGS, "6"), "--eval-every", "3"]
    result = run_cli(["train", str(corpus), "--out", str(run_dir), "--overwrite", *args])
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in (run_dir / "checkpoints").glob("step-*")} == {"step-00000003", "step-00000006"}
    assert [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())][-1] == 6


def test_classifier_training_into_a_folder_with_files_is_refused(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = Path(shutil.copytree(tiny_classifier, tmp_path / "model"))
    before = snapshot(out)
    data = reviews(tmp_path / "train.tsv")
    result = run_cli(["train", str(data), "--out", str(out), *WORD_CLASSIFIER_ARGS])
    assert result.exit_code == 1 and "already holds files" in error_line(result.stderr)
    assert snapshot(out) == before


def test_a_failed_run_leaves_no_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "new"
    result = run_cli(["train", str(tmp_path / "missing.txt"), "--out", str(out), *TINY_TRAIN_ARGS])
    assert result.exit_code == 1 and not out.exists()


# ---- 2. export


def test_export_refuses_a_folder_of_other_files_but_replaces_its_own_export(
    tiny_lm: Path, run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    assert run_cli(["export", "--model", str(tiny_lm), str(out)]).exit_code == 0
    assert run_cli(["export", "--model", str(tiny_lm), str(out)]).exit_code == 0  # the same model again

    # Another model (other weights) into it: refused, nothing touched.
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    assert (
        run_cli(
            ["train", str(corpus), "--out", str(run_dir), "--resume", *longer(TINY_TRAIN_ARGS, "22")]
        ).exit_code
        == 0
    )
    before = snapshot(out)
    result = run_cli(["export", "--model", str(run_dir), str(out)])
    assert result.exit_code == 1 and "--overwrite" in error_line(result.stderr)
    assert snapshot(out) == before

    # A folder holding another run's tokenizer.json: refused; --overwrite replaces it.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "tokenizer.json").write_text("{}")
    result = run_cli(["export", "--model", str(tiny_lm), str(foreign)])
    assert result.exit_code == 1 and "tokenizer.json" in error_line(result.stderr)
    assert (foreign / "tokenizer.json").read_text() == "{}"
    assert run_cli(["export", "--model", str(tiny_lm), "--overwrite", str(foreign)]).exit_code == 0
    assert (foreign / "tokenizer.json").read_text() == (tiny_lm / "tokenizer.json").read_text()


# ---- 3. an untrusted config.json


def edited(run: Path, change) -> Path:  # type: ignore[no-untyped-def]
    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda c: c["model"].update(num_layers=100_000), "layers must be in 1..256"),
        (lambda c: c["model"].update(hidden_size=20_000), "has shape"),
        (lambda c: c["model"].update(num_layers=3), "does not match the model"),
        (lambda c: c["model"].update(hidden_size=16.0), "must be of type int"),
        (lambda c: c["model"].update(dropout="0.2"), "must be of type float"),
        (lambda c: c.update(format_version=0), "format_version"),
        (lambda c: c.update(format_version=-5), "format_version"),
        (lambda c: c.update(format_version=True), "format_version"),
        (lambda c: c.update(labels=[{"a": 1}]), "label"),
        (lambda c: c.update(labels="negative"), "label"),
    ],
)
def test_an_untrusted_config_is_checked_before_anything_is_built(
    run_dir: Path, change, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import lstmtext.runs.checkpoint

    built = []  # models built outside the meta device (which allocates nothing)
    real_build = lstmtext.runs.checkpoint.build_model

    def build_model(config):  # type: ignore[no-untyped-def]
        if torch.empty(0).device.type != "meta":
            built.append(config)
        return real_build(config)

    monkeypatch.setattr(lstmtext.runs.checkpoint, "build_model", build_model)
    edited(run_dir, change)
    for command in (["info", str(run_dir)], ["generate", "--model", str(run_dir), "-n", "5"]):
        started = time.perf_counter()
        result = run_cli(command)
        assert result.exit_code in (1, 2)
        assert says in error_line(result.stderr) and "internal error" not in result.stderr
        assert time.perf_counter() - started < 10
    assert built == []  # no model of 10^5 layers or of 6.4 GB was built to find out


def test_deeply_nested_or_huge_config_json(run_dir: Path) -> None:
    (run_dir / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli(["info", str(run_dir)])
    assert result.exit_code == 1 and "nested too deeply" in error_line(result.stderr)
    (run_dir / "config.json").write_text(" " * (2 << 20))
    result = run_cli(["info", str(run_dir)])
    assert result.exit_code == 1 and "more than an lstmtext file holds" in error_line(result.stderr)


def test_a_fifo_named_config_json_does_not_hang_the_loader(run_dir: Path) -> None:
    (run_dir / "config.json").unlink()
    os.mkfifo(run_dir / "config.json")
    done = subprocess.run(["lstmtext", "info", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not a regular file" in error_line(done.stderr)


# ---- 4. long texts to classify


def test_a_long_text_is_read_in_windows_with_the_same_result(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(1)
    medium = tmp_path / "medium.txt"
    medium.write_text(
        " ".join(rng.choice(GOOD + BAD + ["the", "film"]) for _ in range(3000)), encoding="utf-8"
    )
    args = ["classify", "--model", str(tiny_classifier), "--json", "--precision", "fp32", str(medium)]
    whole = json.loads(run_cli(args).stdout)["probabilities"]
    import lstmtext.classifier.predict

    monkeypatch.setattr(lstmtext.classifier.predict, "LONG_TEXT_WINDOW", 100)  # 30 windows, state carried
    windowed = json.loads(run_cli(args).stdout)["probabilities"]
    assert windowed == pytest.approx(whole, abs=1e-4)


def test_classify_leaves_torch_threads_as_it_found_them(tiny_classifier: Path, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("a great film", encoding="utf-8")
    before = torch.get_num_threads()
    for threads in ([], ["--threads", "1"], ["--threads", "3"]):
        result = run_cli(["classify", "--model", str(tiny_classifier), *threads, str(text)])
        assert result.exit_code == 0, result.stderr
        assert torch.get_num_threads() == before
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    args = ["--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS, "--max-steps", "2", "--threads", "1"]
    assert run_cli(["train", str(corpus), *args]).exit_code == 0  # training too
    assert torch.get_num_threads() == before


def test_one_row_runs_on_one_thread() -> None:
    from lstmtext.threads import inference_threads

    # A single long review, or a few: one thread (see lstmtext.threads); a full batch: all.
    assert inference_threads(rows=1, hidden_size=256) == 1
    assert inference_threads(rows=16, hidden_size=256) == 1
    assert inference_threads(rows=128, hidden_size=256) == torch.get_num_threads()


# ---- 5. labelled data read wrongly


def test_a_header_naming_other_columns_is_not_an_example(tmp_path: Path) -> None:
    data = reviews(tmp_path / "train.tsv", header="sentiment\treview")
    out = tmp_path / "model"
    result = run_cli(["train", str(data), "--out", str(out), *WORD_CLASSIFIER_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "looks like a header" in line and "--label-column" in line and "'sentiment'" in line
    # Named, the columns are read and the header is no example.
    named = ["--label-column", "sentiment", "--text-column", "review"]
    result = run_cli(["train", str(data), "--out", str(out), *WORD_CLASSIFIER_ARGS, *named])
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["labels"] == ["negative", "positive"]


def test_swapped_columns_are_refused(tmp_path: Path) -> None:
    data = reviews(tmp_path / "train.tsv", swap=True)
    result = run_cli(["train", str(data), "--out", str(tmp_path / "model"), *WORD_CLASSIFIER_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "look like texts" in line and "--label-column" in line


def test_three_classes_keep_working(tmp_path: Path) -> None:
    from lstmtext.data.labelled import read_labelled

    tweets = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tweets" / "train.tsv"
    if tweets.exists():
        assert read_labelled(tweets).label_names == ("negative", "neutral", "positive")
    rows = [f"{label}\tthis one is {label} number {i}" for i in range(10) for label in ("neg", "neu", "pos")]
    data = tmp_path / "three.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = run_cli(["train", str(data), "--out", str(tmp_path / "model"), *WORD_CLASSIFIER_ARGS])
    assert result.exit_code == 0, result.stderr


# ---- 6. many samples: bounded memory, Ctrl-C heard


def test_many_samples_are_made_in_bounded_batches(tiny_lm: Path) -> None:
    from lstmtext.lm.generate import MAX_BATCH_ROWS, batch_rows
    from lstmtext.runs.checkpoint import load_checkpoint

    config = load_checkpoint(tiny_lm).config.model
    assert batch_rows(config, 100_000_000) <= MAX_BATCH_ROWS
    result = run_cli(
        ["generate", "--model", str(tiny_lm), "--num-samples", "5000", "-n", "2", "--random-state", "1"]
    )
    assert result.exit_code == 0 and result.stdout.count("--- sample ") == 5000
    assert "--- sample 4999 ---" in result.stdout


# Out of the default suite until understood: in one full run of three on a loaded 2-core machine the
# process printed on for 30 s after the SIGINT; alone it passes every time.
@pytest.mark.slow
def test_ctrl_c_stops_a_huge_generate_at_once(tiny_lm: Path) -> None:
    command = ["lstmtext", "generate", "--model", str(tiny_lm), "--num-samples", "100000000", "-n", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # the first batch is out: sampling is under way
        assert first.startswith("--- sample 0 ---"), first
        process.send_signal(signal.SIGINT)
        started = time.perf_counter()
        _, stderr = process.communicate(timeout=30)
        assert time.perf_counter() - started < 10
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr == "lstmtext: interrupted\n"


def test_ctrl_c_while_torch_imports_is_one_line() -> None:
    # KeyboardInterrupt raised by the import of torch, as Ctrl-C in those seconds would.
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['lstmtext', 'info', '.']\n"
        "from lstmtext.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "lstmtext: interrupted\n"


def test_non_finite_temperature_is_refused(tiny_lm: Path) -> None:
    for value in ("inf", "nan"):
        result = run_cli(["generate", "--model", str(tiny_lm), "--temperature", value])
        assert result.exit_code == 2 and "finite" in error_line(result.stderr)


# ---- 7. the lock appears filled


def test_an_empty_lock_is_being_filled_not_stale(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("")  # the instant before another run writes its PID
    result = run_cli(["train", str(corpus), "--out", str(out), *TINY_TRAIN_ARGS])
    assert result.exit_code == 1 and "in use by another training" in error_line(result.stderr)
    # Long empty: the leftover of a crash, taken over.
    an_hour_ago = time.time() - 3600
    os.utime(out / ".lock", (an_hour_ago, an_hour_ago))
    result = run_cli(["train", str(corpus), "--out", str(out), "--overwrite", *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr


def test_the_lock_is_never_seen_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmtext.runs.run_directory import OutputLock

    seen = []
    real_link = os.link

    def link(source, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(Path(source).read_text())  # what the lock holds the moment it appears
        return real_link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    with OutputLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert seen == [str(os.getpid())]
    assert list(tmp_path.iterdir()) == []


# ---- 8. a full disk


def disk_full(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_copying_a_step_checkpoint_is_one_short_true_line(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = run_dir.parent / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    monkeypatch.setattr(shutil, "copyfile", disk_full)  # copytree of checkpoints/last -> step-N
    result = run_cli(
        ["train", str(corpus), "--out", str(run_dir), "--resume", *longer(TINY_TRAIN_ARGS, "30")]
    )
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert len(line) < 300 and "No space left on device" in line and "Errno" not in line
    # checkpoints/last of step 30 was written before the copy failed, and the line says so.
    state = json.loads((run_dir / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert f"the checkpoint of step {state['step']} is intact" in line
    assert not list((run_dir / "checkpoints").glob(".*"))


def test_a_full_disk_before_any_checkpoint_claims_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lstmtext.runs.resume_files

    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    monkeypatch.setattr(lstmtext.runs.resume_files, "write_resume_checkpoint", disk_full)
    out = tmp_path / "run"
    result = run_cli(["train", str(corpus), "--out", str(out), *TINY_TRAIN_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert not (out / "checkpoints" / "last").exists()
    assert "checkpoint of step" not in line and "saved before are intact" not in line
    assert "the best model so far (step 10) is intact" in line  # model.safetensors, best.json: true


@pytest.mark.parametrize("task", ["lm", "classify"])
def test_a_full_disk_while_logging_metrics_stops_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    import lstmtext.runs.checkpoint

    monkeypatch.setattr(lstmtext.runs.checkpoint, "append_metrics", disk_full)  # metrics.jsonl, as it happens
    if task == "lm":
        data = tmp_path / "c.txt"
        data.write_text(TINY_TEXT, encoding="utf-8")
        args = TINY_TRAIN_ARGS
    else:
        data, args = reviews(tmp_path / "train.tsv"), WORD_CLASSIFIER_ARGS
    result = run_cli(["train", str(data), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "cannot save a checkpoint" in line and "No space left on device" in line
    assert "nothing of this run was saved yet" in line  # the first log comes before any save


# ---- 9. terminal escapes from a checkpoint


def test_labels_reach_the_terminal_escaped(tiny_classifier: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(tiny_classifier, tmp_path / "model"))
    edited(model, lambda c: c.update(labels=["\x1b]0;owned\x07", "[red]x[/red]\x9b2J"]))
    text = tmp_path / "t.txt"
    text.write_text("a great film", encoding="utf-8")
    for command in (["classify", "--model", str(model), str(text)], ["info", str(model)]):
        result = run_cli(command)
        assert result.exit_code == 0, result.stderr
        assert not any(ch in result.stdout for ch in "\x1b\x07\x9b")
        assert "\\x1b]0;owned\\x07" in result.stdout or "[red]x[/red]\\x9b2J" in result.stdout


# ---- 10. the smaller ones


def test_resume_checks_corpus_tokenizer_and_sizes(run_dir: Path) -> None:
    corpus = run_dir.parent / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    args = longer(TINY_TRAIN_ARGS, "30")
    other = run_dir.parent / "other.txt"
    other.write_text(TINY_TEXT.replace("question", "answer!!"), encoding="utf-8")
    result = run_cli(["train", str(other), "--out", str(run_dir), "--resume", *args])
    assert result.exit_code == 1 and "corpus" in error_line(result.stderr)

    result = run_cli(["train", str(corpus), "--out", str(run_dir), "--resume", *args, "--hidden", "32"])
    assert result.exit_code == 2 and "hidden_size 32" in error_line(result.stderr)

    # A tokenizer of the same size but another order: ids would mean other characters.
    last = run_dir / "checkpoints" / "last" / "tokenizer.json"
    tokenizer = json.loads(last.read_text())
    vocab = tokenizer["model"]["vocab"]
    a, b = [token for token in vocab if len(token) == 1][:2]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    last.write_text(json.dumps(tokenizer))
    result = run_cli(["train", str(corpus), "--out", str(run_dir), "--resume", *args])
    assert result.exit_code == 1 and "tokenizer differs" in error_line(result.stderr)


def test_staging_left_by_a_kill_is_cleaned_at_the_next_start(run_dir: Path) -> None:
    corpus = run_dir.parent / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    (run_dir / "checkpoints" / ".last.x1y2z3").mkdir()
    (run_dir / "checkpoints" / ".step-00000030.partial").mkdir()
    (run_dir / ".model.safetensors.0123abcd.tmp").write_bytes(b"half")
    (run_dir / "checkpoints" / ".last.old").mkdir()  # last exists: a retired copy is garbage too
    (run_dir / ".lock.999999999.0a1b.tmp").write_text("999999999")  # a lock being filled, its writer gone
    result = run_cli(
        ["train", str(corpus), "--out", str(run_dir), "--resume", *longer(TINY_TRAIN_ARGS, "22")]
    )
    assert result.exit_code == 0, result.stderr
    assert not list(run_dir.glob(".*")) and not list((run_dir / "checkpoints").glob(".*"))


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--warmup", "-1"], "warmup steps must be >= 0"),
        (["--softmax-cutoff", "10"], "word or BPE vocabulary"),
        (["--max-time", "-1"], "--max-time must be a positive number of minutes, not -1.0"),
    ],
)
def test_bad_training_options(tmp_path: Path, option: list[str], says: str) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    result = run_cli(["train", str(corpus), "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS, *option])
    assert result.exit_code == 2 and says in error_line(result.stderr)
    assert not (tmp_path / "run").exists()


def test_bpe_training_is_fed_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lstmtext.data.text_pieces
    import lstmtext.data.tokenizer

    pieces: list[int] = []
    real = lstmtext.data.tokenizer.text_pieces

    def recorded(text: str, size: int | None = None):  # type: ignore[no-untyped-def]
        for piece in real(text, size):
            if size is None:  # training's pieces (encode_array cuts its own, of _BLOCK_CHARS)
                pieces.append(len(piece))
            yield piece

    monkeypatch.setattr(lstmtext.data.text_pieces, "PIECE_CHARS", 1000)
    monkeypatch.setattr(lstmtext.data.tokenizer, "text_pieces", recorded)
    corpus = tmp_path / "one-line.txt"
    rng = random.Random(0)
    corpus.write_text(" ".join(rng.choice(GOOD + BAD) for _ in range(5000)), encoding="utf-8")  # no newline
    args = ["--level", "bpe", "--vocab-size", "300", *TINY_TRAIN_ARGS]
    result = run_cli(["train", str(corpus), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.stderr
    assert len(pieces) > 20 and max(pieces) <= 1100


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_bpe_training_on_a_50_mb_line_stays_small(tmp_path: Path) -> None:
    """Peak RSS of BPE training on a 50 MB one-line corpus (10.9 GB before it was fed in pieces).

    The child reads its own high-water mark, VmHWM: getrusage's ru_maxrss would count this test's
    process too (Linux carries it over the fork), which peaks near 2 GB making the corpus."""
    corpus = tmp_path / "line.txt"
    rng = np.random.default_rng(0)
    words = np.array(["the", "film", "was", "great", "boring", "and", "story", "ending", "acting", "12"])
    corpus.write_text(" ".join(rng.choice(words, 12_000_000))[: 50 << 20], encoding="utf-8")
    code = (
        "import re, sys\n"
        "from lstmtext.config import TokenizerConfig\n"
        "from lstmtext.data.tokenizer import TextTokenizer\n"
        "text = open(sys.argv[1], encoding='utf-8').read()\n"
        "TextTokenizer.train([text], TokenizerConfig('bpe', vocab_size=2000))\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(corpus)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 2000  # MB
