"""The README's and docs/'s commands and Python snippets, run on tiny data, so the docs cannot rot.

Every line of every ```sh block in README.md and docs/*.md is a command. Each `lstmtext ...`
command runs in-process (`run_cli`) in a scratch folder per page, in the page's order, with
catalogue names swapped for tiny files and sizes shrunk (SUBSTITUTIONS, TINY_TRAIN); a
command that cannot run here, or a line that is not an `lstmtext` command, must be listed in
SKIPPED or NOT_LSTMTEXT with the reason. Every ```python block runs too, after the page's
commands, unless listed in SKIPPED_PYTHON. Each command must exit 0 and leave what it
documents: the files it names (--out, --html, --png, export's folder) and its output lines.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import TINY_TEXT, run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Lines of sh blocks that are not `lstmtext` commands, by how they start, and why they are not run.
NOT_LSTMTEXT = {
    "make run": "installs the package (pip); the test suite runs on the installed tree",
    "make test": "runs the test suite this test is part of",
    "torchrun": "several processes through torchrun: tests/test_distributed.py runs DDP training on gloo",
}
# `lstmtext` commands not run here, by a piece of their text, and why.
SKIPPED = {
    "--nproc 2": "two processes through torchrun: tests/test_distributed.py runs --nproc on gloo",
}
# Python blocks not run here, by a piece of their text, and why.
SKIPPED_PYTHON = {
    "exported by `lstmtext export --format onnx`, without lstmtext": (
        "examples/sample_onnx.py, run as quoted by tests/test_export.py"
    ),
}

# Speaker names and a quotation, for the docs' `--find` patterns.
PLAY = 'ROMEO:\n"But, soft!" he said.\n' + TINY_TEXT
TEXT_NAMES = ("tinyshakespeare", "ptb", "ptb:valid", "ptb:test", "imdb-unsup")
LABELLED_NAMES = ("sst2", "sst2:valid", "sst2:test", "imdb", "imdb:test")
# Option values the docs give for real data, and what tiny data and tiny models take instead.
SUBSTITUTIONS = {
    ("--unit", "42"): "3",  # the tiny model has 16 units
    ("--max-tokens", "1500"): "200",
    ("--max-steps", "2000"): "4",  # a resume goes past the tiny run's 2 steps
    ("--unfreeze", "300"): "1",
    ("--length", "400"): "20",
    ("--length", "300"): "20",
    ("--length", "200"): "20",
    ("--vocab-size", "8000"): "300",
    ("--vocab-size", "12000"): "300",
    ("--softmax-cutoff", "1000"): "10",
}
PYTHON_SUBSTITUTIONS = {
    "max_steps=500": "max_steps=2",
    "hidden_size=256": "hidden_size=16",
    "unit=42": "unit=3",
}
# Appended to every `lstmtext train`: later options win, so the docs' sizes give way to these.
TINY_TRAIN = ["--layers", "2", "--hidden", "16", "--embed", "16", "--seq-len", "16", "--batch-size", "4"]
TINY_TRAIN += ["--eval-every", "2", "--random-state", "7"]
# The same for `lstmtext train-classifier`, less --seq-len (it batches whole texts).
TINY_CLASSIFIER = ["--layers", "2", "--hidden", "16", "--embed", "16", "--batch-size", "4"]
TINY_CLASSIFIER += ["--eval-every", "2", "--random-state", "7"]


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> Iterator[list[str]]:
    """The block's commands as argument lists: continuations joined, quotes across lines kept."""
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        pending = ""
        if words:
            yield words


def page_commands(page: Path) -> list[list[str]]:
    return [words for block in fenced(page.read_text(encoding="utf-8"), "sh") for words in commands(block)]


def reason_not_run(words: list[str]) -> str | None:
    line = " ".join(words)
    if words[0] != "lstmtext" and "|" not in words:
        reasons = [why for start, why in NOT_LSTMTEXT.items() if line.startswith(start)]
        assert reasons, f"a command the docs test neither runs nor lists in NOT_LSTMTEXT: {line}"
        return reasons[0]
    return next((why for piece, why in SKIPPED.items() if piece in line), None)


def test_every_command_is_run_or_listed_with_a_reason() -> None:
    run = 0
    for page in PAGES:
        for words in page_commands(page):
            run += reason_not_run(words) is None
    assert run >= 30  # the quick start, and every page's commands
    for piece in (*NOT_LSTMTEXT, *SKIPPED):  # no stale entries
        assert any(piece in " ".join(w) for page in PAGES for w in page_commands(page)), piece


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models on one thread: a second one only spins against the machine's other work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tiny_lm: Path, tiny_word_lm: Path, tiny_classifier: Path) -> dict[str, Path]:
    """Tiny stand-ins for the models the docs use without training them: run name -> folder."""
    return {"runs/shakespeare": tiny_lm, "runs/words": tiny_word_lm, "sentiment": tiny_classifier}


@pytest.fixture
def embedded(tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's embedded models replaced by tiny ones, as a fresh clone may lack them."""
    from lstmtext import pretrained
    from lstmtext.pretrained.build import build

    build(tiny_models["runs/shakespeare"], tmp_path / "pretrained" / pretrained.SHAKESPEARE)
    build(tiny_models["runs/shakespeare"], tmp_path / "pretrained" / pretrained.ENGLISH)
    build(tiny_models["sentiment"], tmp_path / "pretrained" / pretrained.SENTIMENT)
    monkeypatch.setattr(pretrained, "PRETRAINED", tmp_path / "pretrained")


def scratch_folder(folder: Path) -> None:
    """The files the docs' commands name, tiny."""
    from lstmtext.corpora.samples import write_sample_labelled

    for name in ("tiny.txt", "input.txt", "play.txt", "val.txt", "corpus.txt", "my.txt"):
        (folder / name).write_text(PLAY, encoding="utf-8")
    write_sample_labelled(folder / "tiny.tsv", n=60, seed=1)
    # calibrate needs mistakes to fit on: the tiny classifier gets tiny.tsv all right
    rows = (folder / "tiny.tsv").read_text(encoding="utf-8").splitlines()
    flipped = {"positive": "negative", "negative": "positive"}
    noisy = [flipped[r.split("\t")[0]] + r[r.index("\t") :] if i % 10 == 0 else r for i, r in enumerate(rows)]
    (folder / "noisy.tsv").write_text("".join(row + "\n" for row in noisy), encoding="utf-8")
    (folder / "review.txt").write_text("A joy from start to finish.\n", encoding="utf-8")
    (folder / "notes.txt").write_text("Loved it.\nThe app crashes every time.\n", encoding="utf-8")
    (folder / "reviews").mkdir()
    (folder / "reviews" / "a.txt").write_text("A superb cast.", encoding="utf-8")
    (folder / "reviews" / "b.txt").write_text("Boring and far too long.", encoding="utf-8")
    (folder / "docs").mkdir()


def substituted(words: list[str], folder: Path, tiny_models: dict[str, Path]) -> list[str]:
    out = []
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if word in TEXT_NAMES:
            word = str(folder / "tiny.txt")
        elif word in LABELLED_NAMES:
            word = str(folder / ("noisy.tsv" if words[1] == "calibrate" else "tiny.tsv"))
        elif word == "lstmtext/pretrained/shakespeare":
            word = str(tiny_models["runs/shakespeare"])
        elif "checkpoints/step-" in word:  # the docs' step is the real run's: take the tiny run's
            run = folder / word.split("/checkpoints/")[0]
            word = str(sorted((run / "checkpoints").glob("step-*"))[-1])
        word = SUBSTITUTIONS.get((before, word), word)
        out.append(word)
    if out[1] == "train" and "--from" in out:  # the model started from sets the sizes
        out += TINY_TRAIN[6:]
    elif out[1] in ("train", "train-classifier"):
        out += TINY_TRAIN if out[1] == "train" else TINY_CLASSIFIER
        if "--max-steps" not in out:
            out += ["--max-steps", "2"]
    if out[1] == "generate" and "--length" not in out:
        out += ["--length", "20"]
    return out


def named_outputs(words: list[str]) -> list[str]:
    """The files and folders a command says it writes."""
    named = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--out", "-o", "--html", "--png")]
    if words[1] == "export":
        named.append(words[-1])
    return named


def check_output(words: list[str], stdout: str) -> None:
    command = words[1]
    if "--json" in words and command in ("classify", "generate"):
        objects = [json.loads(line) for line in stdout.splitlines()]
        keys = {
            "classify": {"input", "label", "probability", "probabilities"},
            "generate": {"sample", "seed", "text"},
        }
        assert objects and all(keys[command] <= set(o) for o in objects), stdout
    elif command == "classify":
        assert "positive" in stdout or "negative" in stdout, stdout
    elif command == "generate" and "--seed" in words and "--beam" not in words:
        assert words[words.index("--seed") + 1] in stdout, stdout
    elif command == "generate":
        assert stdout.strip(), "generate printed nothing"
    elif command == "evaluate":
        assert re.search(r"perplexity|accuracy", stdout, flags=re.IGNORECASE), stdout
    elif command == "info":
        assert stdout.strip(), "info printed nothing"
    if command == "export":
        files = {path.name for path in Path(words[-1]).iterdir()}
        assert {"export.json", "tokenizer.json"} <= files and files & {"model.onnx", "model.pt2"}, files
    if command == "average":
        assert (Path(words[words.index("--out") + 1]) / "averaged.json").is_file()
    if command in ("train", "train-classifier"):
        out = Path(words[words.index("--out") + 1])
        for name in ("config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl"):
            assert (out / name).is_file(), f"{out / name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_commands_and_snippets_run(
    page: Path,
    tiny_models: dict[str, Path],
    embedded: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if page.name == "export.md":  # the one page whose commands need onnxruntime
        pytest.importorskip("onnxruntime")
    folder = tmp_path / "scratch"
    folder.mkdir()
    scratch_folder(folder)
    monkeypatch.chdir(folder)
    with one_thread():
        run_page(page, folder, tiny_models)
    capsys.readouterr()


def run_page(page: Path, folder: Path, tiny_models: dict[str, Path]) -> None:
    for words in page_commands(page):
        if reason_not_run(words) is not None:
            continue
        stdin = None
        if words[0] == "echo":  # echo TEXT | lstmtext ...
            bar = words.index("|")
            stdin, words = " ".join(words[1:bar]) + "\n", words[bar + 1 :]
        if "--interactive" in words:
            stdin = "To be\n\n:top 3\n:pick 1\n"
        words = substituted(words, folder, tiny_models)
        for name in ("--model", "-m", "--from"):  # a model the page uses without training it
            for i in [i for i, w in enumerate(words[:-1]) if w == name]:
                if words[i + 1].startswith("runs/") and not (folder / words[i + 1]).exists():
                    shutil.copytree(tiny_models[words[i + 1]], folder / words[i + 1])
        if words[1] == "info" and not (folder / words[2]).exists():
            shutil.copytree(tiny_models[words[2]], folder / words[2])
        result = run_cli(words[1:], input=stdin)
        line = " ".join(words)
        assert result.exit_code == 0, f"{line}\n{result.stderr}"
        for path in named_outputs(words):
            assert Path(path).exists(), f"{line} did not write {path}"
        check_output(words, result.stdout)
    for block in fenced(page.read_text(encoding="utf-8"), "python"):
        if any(piece in block for piece in SKIPPED_PYTHON):
            continue
        for before, after in PYTHON_SUBSTITUTIONS.items():
            block = block.replace(before, after)
        if "runs/shakespeare" in block and not (folder / "runs" / "shakespeare").exists():
            shutil.copytree(tiny_models["runs/shakespeare"], folder / "runs" / "shakespeare")
        exec(compile(block, str(page), "exec"), {})
