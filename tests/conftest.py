"""The one fixtures module: tiny data, the tiny runs the suite trains once, checkpoints built
without training, the CLI runner and the checks the error tests share.

What a test only reads is session-scoped and built once per run of the suite: `tiny_lm` (a char
model trained through the CLI), `tiny_classifier` (a word-level classifier trained on
`tiny_reviews`) and `tiny_word_lm` (random weights). A test that changes a run works on its own
copy (`run_dir`). A test that needs some checkpoint, trained or not, writes one with
`random_checkpoint` instead of training it.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

if TYPE_CHECKING:
    from torch import nn

    from lstmtext.config import ModelConfig
    from lstmtext.data.tokenizer import TextTokenizer

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"

TINY_TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
) * 8


@dataclasses.dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str], input: str | bytes | None = None) -> CliResult:
    """Run `lstmtext ARGS` in-process through the same error mapping as the real entry point."""
    from lstmtext.cli import run

    runner = CliRunner()
    with runner.isolation(input=input) as (stdout, stderr, _):
        code = run(list(args))
        # The runner's text wrappers are not line-buffered as a real stderr is: flush what is pending.
        sys.stdout.flush()
        sys.stderr.flush()
        return CliResult(code, stdout.getvalue().decode(), stderr.getvalue().decode())


@pytest.fixture
def cli():
    return run_cli


def error_line(stderr: str) -> str:
    """The single line of stderr, checked to be an lstmtext error and not a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("lstmtext: error: "), stderr
    return lines[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes), to show nothing was touched."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# ---- tiny data


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


GOOD = ["great", "wonderful", "superb", "lovely", "moving", "brilliant"]
BAD = ["awful", "boring", "dull", "terrible", "clumsy", "tedious"]
FILLER = ["the", "film", "was", "plot", "acting", "really", "quite", "and", "story", "ending"]


def review(rng: random.Random, words: list[str], length: int = 8) -> str:
    """`length` filler words with two of `words` put in at random places."""
    picks = [rng.choice(FILLER) for _ in range(length)]
    for _ in range(2):
        picks.insert(rng.randrange(len(picks) + 1), rng.choice(words))
    return " ".join(picks) + " ."


def write_labelled(path: Path, rows: Iterable[tuple[str, str]], header: str | None = None) -> Path:
    """A labelled TSV, `label<TAB>text` a line (the catalogue's format), after `header` if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] if header is not None else []
    lines += [f"{label}\t{text}" for label, text in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 reviews, half positive (two of GOOD among filler words), half negative, shuffled."""
    rng = random.Random(0)
    rows = [("positive", review(rng, GOOD)) for _ in range(40)] + [
        ("negative", review(rng, BAD)) for _ in range(40)
    ]
    rng.shuffle(rows)
    return write_labelled(tmp_path_factory.mktemp("tiny_reviews") / "reviews.tsv", rows)


# ---- tiny runs, trained once per session

TINY_TRAIN_ARGS = [
    "--layers",
    "2",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--eval-every",
    "10",
    "--max-steps",
    "20",
    "--random-state",
    "7",
]

TINY_CLASSIFIER_ARGS = [
    "--level", "word", "--layers", "1", "--hidden", "16", "--embed", "8", "--batch-size", "8",
    "--max-steps", "120", "--eval-every", "40", "--lr", "0.02", "--val-fraction", "0.2",
    "--random-state", "3",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny char model trained once for the whole session: a complete run (metrics, best.json,
    checkpoints/last and the step checkpoints of steps 10 and 20)."""
    root = tmp_path_factory.mktemp("tiny_lm")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    out = root / "run"
    result = run_cli(["train", str(corpus), "--out", str(out), *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture
def run_dir(tiny_lm: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny trained run, free to be changed or damaged."""
    return Path(shutil.copytree(tiny_lm, tmp_path / "run"))


@pytest.fixture(scope="session")
def tiny_classifier(tiny_reviews: Path) -> Path:
    """A tiny word-level classifier (negative, positive) trained once on `tiny_reviews`; it gets
    every one of its validation reviews right."""
    out = tiny_reviews.parent / "classifier"
    result = run_cli(["train-classifier", str(tiny_reviews), "--out", str(out), *TINY_CLASSIFIER_ARGS])
    assert result.exit_code == 0, result.stderr
    assert "val accuracy" in result.stderr and "classifier (negative, positive)" in result.stderr
    assert "deprecated" not in result.stderr
    return out


# ---- checkpoints without training


def tiny_tokenizer(level: str = "char", text: str = TINY_TEXT) -> TextTokenizer:
    """The tokenizer `lstmtext train --level LEVEL` makes of `text`; of TINY_TEXT, the tiny runs' own."""
    from lstmtext.config import TokenizerConfig
    from lstmtext.data.tokenizer import TextTokenizer

    return TextTokenizer.train([text], TokenizerConfig(level))


def random_checkpoint(
    directory: Path,
    model: ModelConfig | nn.Module,
    tokenizer: TextTokenizer | None = None,
    *,
    labels: tuple[str, ...] = (),
    seed: int = 0,
) -> Path:
    """A checkpoint folder (config.json, tokenizer.json, model.safetensors) that no training made.

    `model` is a ModelConfig, built here with random weights from torch seed `seed`, or a model
    already built (and changed by the caller). `tokenizer` (tiny_tokenizer() by default) must have
    the model's vocabulary size; a classifier's `labels` name its classes in head order.
    """
    import torch

    from lstmtext.config import ModelConfig, RunConfig, TokenizerConfig
    from lstmtext.core.model import build_model
    from lstmtext.runs.checkpoint import write_model_files

    tokenizer = tokenizer or tiny_tokenizer()
    if isinstance(model, ModelConfig):
        torch.manual_seed(seed)
        model = build_model(model)
    config = RunConfig(TokenizerConfig(tokenizer.level), model.config, labels=labels)
    write_model_files(directory, config, tokenizer, model)
    return directory


@pytest.fixture(scope="session")
def tiny_word_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level language model of TINY_TEXT's words with random weights, `tiny_lm`'s shape."""
    from lstmtext.config import ModelConfig

    tokenizer = tiny_tokenizer("word")
    shape = ModelConfig(tokenizer.vocab_size, embedding_dim=8, hidden_size=16, num_layers=2)
    return random_checkpoint(tmp_path_factory.mktemp("tiny_word_lm"), shape, tokenizer)


# ---- a run straight through against one stopped and resumed


def train_whole_and_split(config, shape, root: Path, stop_after: int = 13) -> tuple[Path, Path]:
    """One run of `config` straight through (root/whole) and one stopped after `stop_after`
    steps, then resumed (root/split), both on TINY_TEXT at char level; their directories."""
    import threading

    from lstmtext.config import TokenizerConfig
    from lstmtext.lm.api import train_language_model

    corpus = root / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train_language_model([str(corpus)], TokenizerConfig("char"), shape, config, root / "whole")
    stop = threading.Event()

    def stop_soon(event) -> None:  # type: ignore[no-untyped-def]
        if event.step >= stop_after:
            stop.set()

    args = ([str(corpus)], TokenizerConfig("char"), shape, config, root / "split")
    train_language_model(*args, on_event=stop_soon, stop_event=stop)
    train_language_model(*args, resume=True)
    return root / "whole", root / "split"
