"""Every bad input gets a clear answer, nothing written before is lost, no checkpoint runs code.

One test (or one parametrised case) per row of issue 8, each through the real CLI: the exit
code, stderr as one readable line (`lstmtext: error: ...`, or a warning where the CLI
adapts), no traceback, and the files already on disk byte for byte as they were.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig
from lstmtext.core.model import Classifier
from lstmtext.data.tokenizer import TextTokenizer
from lstmtext.runs.checkpoint import write_model_files
from lstmtext.training.loop import Trainer

from .conftest import TINY_TEXT, TINY_TRAIN_ARGS, error_line, snapshot

# A few steps of a tiny model: enough to reach the code under test, cheap on one core.
QUICK_TRAIN_ARGS = [
    "--layers", "1", "--hidden", "8", "--embed", "4", "--seq-len", "8", "--batch-size", "2",
    "--max-steps", "2", "--eval-every", "2", "--threads", "1",
]  # fmt: skip


@pytest.fixture
def one_thread():
    # `--threads 1` in-process sets torch's thread count for the whole test process: put it back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# ---- corpus files


def _png(path: Path) -> Path:
    # The PNG signature, then an IHDR chunk: its length field alone holds three NUL bytes.
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02" + bytes(64)
    )
    return path


def bad_corpus(directory: Path, case: str) -> Path:
    """A corpus of the kind `case` names, made in `directory`."""
    if case == "missing":
        return directory / "missing.txt"
    if case == "no text files":
        (directory / "notes").mkdir()
        (directory / "notes" / "readme.md").write_text("not a .txt file")
        return directory / "notes"
    if case == "binary":
        return _png(directory / "picture.png")
    contents = {
        "empty": ("empty.txt", b""),
        "whitespace": ("blank.txt", b" \n\n\t"),
        "invalid utf-8": ("latin.txt", b"Fran\xe7ais, " + TINY_TEXT.encode()),
    }
    name, data = contents[case]
    (directory / name).write_bytes(data)
    return directory / name


CORPUS_CASES = {
    "missing": ["missing.txt", "no such file"],
    "no text files": ["notes", "no .txt files"],
    "empty": ["empty.txt", "empty"],
    "whitespace": ["blank.txt", "only whitespace"],
    "binary": ["picture.png", "binary"],
    "invalid utf-8": ["latin.txt", "byte 4", "0xe7", "--encoding", "--errors replace"],
}


@pytest.mark.parametrize("case", list(CORPUS_CASES))
def test_bad_corpus_is_one_line_naming_the_file(cli, run_dir: Path, tmp_path: Path, case: str) -> None:
    corpus = bad_corpus(tmp_path, case)
    before = snapshot(run_dir)
    # --overwrite: the run in --out may be replaced, but only once the new one has good data.
    result = cli(["train", str(corpus), "--out", str(run_dir), "--overwrite", *QUICK_TRAIN_ARGS])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    for text in CORPUS_CASES[case]:
        assert text in line, line
    assert snapshot(run_dir) == before  # the run already in --out is untouched, lock released


def test_debug_shows_the_traceback(cli, tmp_path: Path) -> None:
    result = cli(["--debug", "train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "CorpusError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("lstmtext: error: ")


@pytest.mark.parametrize("way_out", [["--errors", "replace"], ["--encoding", "latin-1"]])
def test_invalid_utf8_has_a_way_out(cli, tmp_path: Path, one_thread, way_out: list[str]) -> None:
    corpus = bad_corpus(tmp_path, "invalid utf-8")
    result = cli(["train", str(corpus), "--out", str(tmp_path / "run"), *QUICK_TRAIN_ARGS, *way_out])
    assert result.exit_code == 0, result.stderr
    vocabulary = TextTokenizer.load(tmp_path / "run" / "tokenizer.json")
    seen = "ç" if way_out[0] == "--encoding" else "\ufffd"
    assert vocabulary.unknown_characters(seen) == set()


def test_short_corpus_adapts_with_a_warning(cli, tmp_path: Path, one_thread) -> None:
    corpus = tmp_path / "short.txt"
    corpus.write_text("a short corpus, shorter than one batch.\n", encoding="utf-8")
    args = [a for a in QUICK_TRAIN_ARGS]
    args[args.index("--seq-len") + 1], args[args.index("--batch-size") + 1] = "32", "8"
    result = cli(["train", str(corpus), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("lstmtext: warning: ") and "batch size 8 -> 1" in warnings[0]
    assert (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize("text", ["a", "ab"])
def test_corpus_with_nothing_to_learn_is_a_clear_error(cli, tmp_path: Path, text: str) -> None:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(text, encoding="utf-8")
    result = cli(["train", str(corpus), "--out", str(tmp_path / "run"), *QUICK_TRAIN_ARGS])
    assert result.exit_code == 1
    assert "nothing to learn" in error_line(result.stderr)
    assert not (tmp_path / "run" / ".lock").exists()


# ---- labelled files (the readers' own tests are in test_labelled.py)

LABELLED_CASES = {
    "missing column": ("data.csv", "label,body\npos,a fine film\nneg,a dull film\n", "data.csv:1: no 'text'"),
    "empty text": ("data.tsv", "pos\ta fine film\nneg\t   \npos\tgood\n", "data.tsv:2: empty text"),
    "missing label": ("data.tsv", "pos\ta fine film\n\ta dull film\n", "data.tsv:2: missing label"),
    "missing label jsonl": (
        "data.jsonl",
        '{"text": "fine", "label": "pos"}\n{"text": "dull"}\n',
        "data.jsonl:2",
    ),
    "single class": ("data.tsv", "pos\ta fine film\npos\tgood\n", "only one class ('pos')"),
    "mixed delimiters": ("data.tsv", "pos\ta fine film\nneg,a dull film\n", "data.tsv:2: no tab"),
}


@pytest.mark.parametrize("case", list(LABELLED_CASES))
def test_bad_labelled_file_is_one_line_with_its_line_number(cli, tmp_path: Path, case: str) -> None:
    name, content, expected = LABELLED_CASES[case]
    data = tmp_path / name
    data.write_text(content, encoding="utf-8")
    out = tmp_path / "classifier"
    result = cli(["train", "--task", "classify", str(data), "--out", str(out), *QUICK_TRAIN_ARGS])
    assert result.exit_code == 1
    assert expected in error_line(result.stderr)
    assert not out.exists() or not any(out.iterdir())


def test_unknown_label_in_validation_data(cli, tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("pos\ta fine film\nneg\ta dull film\n", encoding="utf-8")
    val = tmp_path / "val.tsv"
    val.write_text("pos\tgood\nmeh\tso so\n", encoding="utf-8")
    result = cli(
        ["train", "--task", "classify", str(train), "--val", str(val), "--out", str(tmp_path / "c"),
         *QUICK_TRAIN_ARGS]
    )  # fmt: skip
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "val.tsv:2: unknown label 'meh'" in line and "neg, pos" in line


# ---- generate --seed


def test_seed_with_unseen_characters_warns_and_generates(cli, tiny_lm: Path) -> None:
    seed = "日本 ✓"
    result = cli(
        ["generate", "--model", str(tiny_lm), "--seed", seed, "--length", "20", "--random-state", "1"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(seed) and len(result.stdout) > len(seed)
    warning = result.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith("lstmtext: warning: "), result.stderr
    assert "'日'" in warning[0] and "'✓'" in warning[0] and "bytes" in warning[0]


def test_empty_seed_starts_after_a_line_break(cli, tiny_lm: Path) -> None:
    result = cli(["generate", "--model", str(tiny_lm), "--seed", "", "--length", "30", "--random-state", "1"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "" and len(result.stdout.strip()) > 0


# ---- --model: missing, truncated, corrupt, newer, the wrong kind


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_config(run: Path, change) -> None:
    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))


MODEL_CASES = {
    "missing directory": (lambda run: shutil.rmtree(run), "does not exist"),
    "missing weights": (lambda run: (run / "model.safetensors").unlink(), "model.safetensors is missing"),
    "truncated weights": (lambda run: _truncate(run / "model.safetensors"), "truncated or corrupt"),
    "empty weights": (lambda run: (run / "model.safetensors").write_bytes(b""), "not a valid safetensors"),
    "corrupt config": (lambda run: (run / "config.json").write_text('{"model": {'), "not valid JSON"),
    "missing config": (lambda run: (run / "config.json").unlink(), "config.json is missing"),
    "corrupt tokenizer": (lambda run: _truncate(run / "tokenizer.json"), "tokenizer.json"),
    "newer format": (
        lambda run: _edit_config(run, lambda c: c.update(format_version=99)),
        "format version 99 is newer",
    ),
    "foreign config": (lambda run: (run / "config.json").write_text('{"hidden": 3}'), "not an lstmtext"),
    "wrong shapes": (
        lambda run: _edit_config(run, lambda c: c["model"].update(hidden_size=24)),
        "has shape",
    ),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_directory_says_which_and_why(cli, run_dir: Path, tiny_corpus: Path, case: str) -> None:
    damage, expected = MODEL_CASES[case]
    damage(run_dir)
    for command in (["generate", "--length", "5"], ["evaluate", str(tiny_corpus)], ["info"]):
        model = ["--model", str(run_dir)] if command[0] != "info" else [str(run_dir)]
        result = cli([*command, *model])
        assert result.exit_code == 1, (command, result.stderr)
        assert expected in error_line(result.stderr), command
        assert result.stdout == ""


def _classifier_dir(directory: Path) -> Path:
    tokenizer = TextTokenizer.train(["a fine film, a dull film"], TokenizerConfig("char"))
    model_config = ModelConfig(
        vocab_size=tokenizer.vocab_size, embedding_dim=4, hidden_size=8, num_layers=1, task="classify",
        num_classes=2,
    )  # fmt: skip
    config = RunConfig(TokenizerConfig("char"), model_config, labels=("neg", "pos"))
    write_model_files(directory, config, tokenizer, Classifier(model_config))
    return directory


def test_classifier_where_a_language_model_is_needed(cli, tmp_path: Path, tiny_lm: Path) -> None:
    text = tmp_path / "review.txt"
    text.write_text("a fine film", encoding="utf-8")
    result = cli(["classify", "--model", str(tiny_lm), str(text)])  # and the other way round
    assert result.exit_code == 1
    assert "holds a language model, but this command needs a classifier" in error_line(result.stderr)
    classifier = _classifier_dir(tmp_path / "classifier")
    result = cli(["generate", "--model", str(classifier), "--length", "5"])
    assert result.exit_code == 1
    assert "holds a classifier, but this command needs a language model" in error_line(result.stderr)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a fine film and a dull film\n" * 20, encoding="utf-8")
    result = cli(
        ["train", str(corpus), "--from", str(classifier), "--out", str(tmp_path / "lm"), *QUICK_TRAIN_ARGS]
    )
    # a language model fine-tunes a language model; a classifier starts classifiers
    assert result.exit_code == 2
    assert "train-classifier" in result.stderr
    assert not (tmp_path / "lm").exists()


# ---- a pickle where a checkpoint file should be


class Payload:
    """Unpickling this creates `marker`: the proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoints/last/optimizer.safetensors"])
def test_a_pickle_named_like_a_checkpoint_never_runs(
    cli, run_dir: Path, tiny_corpus: Path, name: str
) -> None:
    marker = run_dir.parent / "pwned"
    payload = pickle.dumps(Payload(marker), protocol=2)
    (run_dir / name).write_bytes(payload)
    if name == "model.safetensors":
        result = cli(["generate", "--model", str(run_dir), "--length", "5"])
    else:
        args = [a if a != "20" else "30" for a in TINY_TRAIN_ARGS]
        result = cli(["train", str(tiny_corpus), "--out", str(run_dir), "--resume", *args])
    assert result.exit_code == 1
    assert "safetensors" in error_line(result.stderr)
    assert not marker.exists()
    assert (run_dir / name).read_bytes() == payload  # refused, and left for the user to inspect


# ---- signals: checkpoint, exit code, exact resume

SIGNAL_TRAIN_ARGS = [
    "--layers", "2", "--hidden", "16", "--embed", "8", "--seq-len", "16", "--batch-size", "4",
    "--dropout", "0.1", "--eval-every", "20", "--max-steps", "400", "--patience", "0",
    "--keep-last", "1", "--random-state", "11", "--threads", "1",
]  # fmt: skip


def history(run: Path) -> list[tuple]:
    """metrics.jsonl without its timings: what an exact resume must reproduce."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("loss"), r.get("val_loss"), r.get("lr")) for r in records]


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(a), load_file(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus, run) of the training the interrupted ones must end up equal to."""
    from .conftest import run_cli

    root = tmp_path_factory.mktemp("uninterrupted")
    corpus = root / "corpus.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    threads = torch.get_num_threads()
    try:
        result = run_cli(["train", str(corpus), "--out", str(root / "run"), *SIGNAL_TRAIN_ARGS])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.stderr
    return corpus, root / "run"


def lstmtext_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lstmtext", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"},
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_and_resume_is_exact(
    cli, uninterrupted, tmp_path: Path, one_thread, signum: int
) -> None:
    corpus, whole = uninterrupted
    run = tmp_path / "run"
    process = lstmtext_process(["train", str(corpus), "--out", str(run), *SIGNAL_TRAIN_ARGS])
    wait_for(run / "checkpoints" / "last" / "trainer_state.json", process)
    if signum == signal.SIGTERM:
        # Meanwhile a second training into the same directory is refused and changes nothing.
        second = cli(["train", str(corpus), "--out", str(run), *SIGNAL_TRAIN_ARGS])
        assert second.exit_code == 1 and "in use by another training" in error_line(second.stderr)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    last_line = stderr.splitlines()[-1]
    assert last_line.startswith("lstmtext: error: interrupted at step ") and "--resume" in last_line
    stopped_at = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())["step"]
    assert 20 <= stopped_at < 400
    assert not (run / ".lock").exists()

    result = cli(["train", str(corpus), "--out", str(run), "--resume", *SIGNAL_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    assert same_weights(run / "checkpoints" / "last" / "model.safetensors",
                        whole / "checkpoints" / "last" / "model.safetensors")  # fmt: skip
    assert same_weights(run / "model.safetensors", whole / "model.safetensors")
    assert history(run) == history(whole)


# ---- disk full, read-only output


def test_disk_full_while_saving_keeps_the_previous_checkpoint(
    cli, run_dir: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(run_dir)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # fsync is where a full disk shows at the latest: the temp file holds part of the data.
    monkeypatch.setattr(os, "fsync", disk_full)
    args = [a if a != "20" else "30" for a in TINY_TRAIN_ARGS]
    result = cli(["train", str(tiny_corpus), "--out", str(run_dir), "--resume", *args])
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "No space left on device" in line and str(run_dir) in line
    assert snapshot(run_dir) == before  # no temp file, staging folder or lock left behind either

    monkeypatch.undo()  # space again: the run goes on from the intact checkpoint
    result = cli(["train", str(tiny_corpus), "--out", str(run_dir), "--resume", *args])
    assert result.exit_code == 0, result.stderr
    assert json.loads((run_dir / "checkpoints" / "last" / "trainer_state.json").read_text())["step"] == 30


def test_crash_between_the_renames_of_a_save_still_resumes(
    cli, run_dir: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    # A save swaps checkpoints/last for the new folder in two renames; power lost between them
    # leaves only the retired copy, .last.old. Resuming from it equals resuming an intact run.
    intact = Path(shutil.copytree(run_dir, tmp_path / "intact"))
    (run_dir / "checkpoints" / "last").rename(run_dir / "checkpoints" / ".last.old")
    args = [a if a != "20" else "30" for a in TINY_TRAIN_ARGS]
    for run in (run_dir, intact):
        result = cli(["train", str(tiny_corpus), "--out", str(run), "--resume", *args])
        assert result.exit_code == 0, result.stderr
    assert same_weights(run_dir / "checkpoints" / "last" / "model.safetensors",
                        intact / "checkpoints" / "last" / "model.safetensors")  # fmt: skip


def test_resume_with_nothing_to_resume(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "new"), "--resume", *QUICK_TRAIN_ARGS])
    assert result.exit_code == 1
    assert "nothing to resume" in error_line(result.stderr)


def test_read_only_checkpoint_folder(
    cli, run_dir: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = run_dir / "checkpoints"
    before = snapshot(checkpoints)
    if os.geteuid() == 0:  # root writes into read-only folders: refuse as the folder would

        def read_only(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

        monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    else:
        checkpoints.chmod(0o555)
    try:
        args = [a if a != "20" else "30" for a in TINY_TRAIN_ARGS]
        result = cli(["train", str(tiny_corpus), "--out", str(run_dir), "--resume", *args])
    finally:
        checkpoints.chmod(0o755)
    assert result.exit_code == 1
    line = error_line(result.stderr)
    assert "Permission denied" in line and "cannot save a checkpoint" in line
    assert snapshot(checkpoints) == before


# ---- two trainings, one directory


def test_second_training_into_a_held_directory_is_refused(cli, run_dir: Path, tiny_corpus: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(str(holder.pid))
        before = snapshot(run_dir)
        result = cli(["train", str(tiny_corpus), "--out", str(run_dir), *QUICK_TRAIN_ARGS])
        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert "in use by another training" in line and "--out" in line
        assert snapshot(run_dir) == before
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale, and the next training takes it over.
    result = cli(["train", str(tiny_corpus), "--out", str(run_dir), "--overwrite", *QUICK_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    assert not (run_dir / ".lock").exists()


# ---- NaN / Inf


def _poison(monkeypatch: pytest.MonkeyPatch, poisoned, *, gradient: bool = False) -> None:
    """On loop steps where `poisoned(step)`, make the weights NaN before the forward pass (the loss
    is NaN) or, with `gradient`, make a gradient infinite (the loss is finite, the update is not)."""
    real_step = Trainer._train_step

    def step(self: Trainer, batch, lr):
        weight = next(self.model.parameters())
        hook = None
        if poisoned(self.step) and not gradient:
            with torch.no_grad():
                weight.fill_(float("nan"))
        elif poisoned(self.step):
            hook = weight.register_hook(lambda grad: grad * float("inf"))
        try:
            return real_step(self, batch, lr)
        finally:
            if hook is not None:
                hook.remove()

    monkeypatch.setattr(Trainer, "_train_step", step)


def all_finite(path: Path) -> bool:
    return all(bool(t.isfinite().all()) for t in load_file(path).values())


def test_nan_loss_rolls_back_and_training_finishes(
    cli, tmp_path: Path, tiny_corpus: Path, monkeypatch
) -> None:
    pending = {15}  # poisoned once: the rerun of step 15 after the rollback is clean

    def once(step: int) -> bool:
        hit = step in pending
        pending.discard(step)
        return hit

    _poison(monkeypatch, once)
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "rolled back to step 10" in warnings[0], result.stderr
    assert warnings[0].startswith("lstmtext: warning: ")
    assert all_finite(tmp_path / "run" / "model.safetensors")
    assert all_finite(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")


@pytest.mark.parametrize("gradient", [False, True], ids=["nan-loss", "inf-gradient"])
def test_lasting_nan_stops_with_the_last_good_checkpoint(
    cli, tmp_path: Path, tiny_corpus: Path, monkeypatch, gradient: bool
) -> None:
    # Every step from `first` on is poisoned. With `gradient` the loss stays finite, and step 19 is the
    # one whose weights the evaluation at step 20 saves: they must not reach a checkpoint.
    first = 19 if gradient else 15
    _poison(monkeypatch, lambda step: step >= first, gradient=gradient)
    run = tmp_path / "run"
    result = cli(["train", str(tiny_corpus), "--out", str(run), *TINY_TRAIN_ARGS])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("lstmtext: error: ") and "loss became" in last_line, result.stderr
    last = run / "checkpoints" / "last"
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 10
    assert all_finite(last / "model.safetensors") and all_finite(run / "model.safetensors")
    assert not (run / ".lock").exists()


# ---- nonsense options

NONSENSE = {
    "negative hidden": ["train", "{corpus}", "--hidden", "-3"],
    "zero layers": ["train", "{corpus}", "--layers", "0"],
    "zero batch": ["train", "{corpus}", "--batch-size", "0"],
    "negative seq len": ["train", "{corpus}", "--seq-len", "-1"],
    "dropout 1.5": ["train", "{corpus}", "--dropout", "1.5"],
    "negative lr": ["train", "{corpus}", "--lr", "-0.1"],
    "zero max steps": ["train", "{corpus}", "--max-steps", "0"],
    "val fraction 1": ["train", "{corpus}", "--val-fraction", "1"],
    "errors bogus": ["train", "{corpus}", "--errors", "bogus"],
    "unknown level": ["train", "{corpus}", "--level", "syllable"],
    "top-p 1.5": ["generate", "--model", "{model}", "--top-p", "1.5"],
    "top-p 0": ["generate", "--model", "{model}", "--top-p", "0"],
    "negative temperature": ["generate", "--model", "{model}", "--temperature", "-1"],
    "nan temperature": ["generate", "--model", "{model}", "--temperature", "nan"],
    "top-k 0": ["generate", "--model", "{model}", "--top-k", "0"],
    "negative length": ["generate", "--model", "{model}", "--length", "-5"],
    "zero samples": ["generate", "--model", "{model}", "--num-samples", "0"],
    "evaluate zero batch": ["evaluate", "--model", "{model}", "{corpus}", "--batch-size", "0"],
    "classify zero batch": ["classify", "--model", "{model}", "{corpus}", "--batch-tokens", "0"],
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_nonsense_options_are_usage_errors(cli, tiny_lm: Path, tiny_corpus: Path, tmp_path: Path, case: str):
    values = {"corpus": str(tiny_corpus), "model": str(tiny_lm)}
    args = [a.format(**values) for a in NONSENSE[case]]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    result = cli(args)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    if result.stderr.startswith("lstmtext: error: "):
        error_line(result.stderr)  # ours: one line; click's usage errors add the usage line
    else:
        assert "Invalid value" in result.stderr or "Error" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()
