"""Shared fixtures: a small deterministic corpus, a tiny trained model, and a CLI runner."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

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


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


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


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny char model trained once for the whole session."""
    root = tmp_path_factory.mktemp("tiny_lm")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    out = root / "run"
    result = run_cli(["train", str(corpus), "--out", str(out), *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    return out


def train_whole_and_split(config, shape, root: Path, stop_after: int = 13) -> tuple[Path, Path]:
    """One run of `config` straight through (root/whole) and one stopped after `stop_after`
    steps, then resumed (root/split), both on TINY_TEXT at char level; their directories."""
    import threading

    from lstmtext.config import TokenizerConfig
    from lstmtext.language_model import train_language_model

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
