"""Which subcommands the app has, each imported only when it is about to run.

A command module imports torch, which takes seconds; `lstmtext --help` and shell completion
should not wait for it. So the top level lists the commands from the table below, and a
command's module is imported when that command runs or shows its own help. A test holds each
summary to the first line of the command's docstring.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from lstmtext.errors import Interrupted


@dataclass(frozen=True)
class Entry:
    module: str  # lstmtext.cli.<module>
    function: str
    summary: str  # the top-level help's line: the first line of the function's docstring
    no_args_is_help: bool = True


COMMANDS: dict[str, Entry] = {
    "train": Entry("train", "train", "Train a language model on CORPUS and save it in --out."),
    "train-classifier": Entry(
        "train_classifier", "train_classifier", "Train a classifier on LABELLED texts and save it in --out."
    ),
    "evaluate": Entry(
        "evaluate",
        "evaluate",
        "Loss, perplexity, bits per token and bits per UTF-8 byte of a language model on DATA.",
    ),
    "generate": Entry(
        "generate",
        "generate",
        "Sample text from a language model, printing each token as it is made.",
        no_args_is_help=False,
    ),
    "copies": Entry(
        "copies",
        "copies",
        "How much of a model's samples is copied from its corpus, and how repetitive they are.",
    ),
    "classify": Entry(
        "classify",
        "classify",
        "Label each text with the classifier's most probable class and its probability.",
    ),
    "calibrate": Entry(
        "calibrate",
        "calibrate",
        "Fit a classifier's temperature on held-out labelled DATA and store it in its config.json.",
    ),
    "info": Entry(
        "info", "info", "Config, parameter count, vocabulary size and training summary of a checkpoint."
    ),
    "inspect": Entry(
        "inspect",
        "inspect",
        "Cell state, hidden state and gates of every token of a text, as the model computes them.",
    ),
    "export": Entry(
        "export",
        "export",
        "Export the whole step of a model (embedding, LSTM with its state, head) into OUT.",
    ),
    "average": Entry(
        "average",
        "average",
        "Average the weights of checkpoints of one model (e.g. the best and the last steps of a run).",
    ),
}


def _without_flag_metavars(params: list[Any]) -> list[Any]:
    # typer shows a type for every option; for a flag (`--resume`, `--help`) `<bool>` says nothing.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose help shows no type for its flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:
            # typer turns Ctrl-C into Exit(130) with nothing said; main() prints the one line.
            raise Interrupted("interrupted") from interrupt


class LazyGroup(TyperGroup):
    """The `lstmtext` group: commands listed from COMMANDS, imported when one is resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # Stand-ins carrying the summaries: what the top-level help, completion and "did you mean" read.
        self.commands = {
            name: Command(name=name, help=entry.summary, short_help=entry.summary)
            for name, entry in COMMANDS.items()
        }
        self._summaries_only = False

    @contextlib.contextmanager
    def _listing(self) -> Iterator[None]:
        self._summaries_only = True
        try:
            yield
        finally:
            self._summaries_only = False

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_metavars(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._summaries_only:
            return self.commands[cmd_name]
        try:
            return load(cmd_name)
        except KeyboardInterrupt as interrupt:  # while torch imports: seconds, when Ctrl-C is likely
            raise Interrupted("interrupted") from interrupt

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._listing():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        with self._listing():
            return super().shell_complete(ctx, incomplete)


@functools.cache
def load(name: str) -> TyperCommand:
    """The click command of `lstmtext NAME`, its module imported now."""
    entry = COMMANDS[name]
    function = getattr(importlib.import_module(f"lstmtext.cli.{entry.module}"), entry.function)
    single = typer.Typer(add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False)
    single.command(name, cls=Command, no_args_is_help=entry.no_args_is_help)(function)
    command = typer.main.get_command(single)
    assert isinstance(command, TyperCommand)
    command.help = unwrap(command.help)
    return command


def unwrap(text: str | None) -> str | None:
    """A docstring's paragraphs each as one line, so rich wraps them to the terminal's width.

    In rich markup mode typer keeps a docstring's line breaks, and a paragraph wrapped at 90
    columns comes out ragged at 80. A paragraph that starts with \\b keeps its lines.
    """
    if text is None:
        return None
    first, *rest = inspect.cleandoc(text).split("\n\n")
    # typer itself drops the \\b of the first paragraph only.
    kept = [p.removeprefix("\b").lstrip("\n") if p.startswith("\b") else " ".join(p.split()) for p in rest]
    return "\n\n".join([first if first.startswith("\b") else " ".join(first.split()), *kept])
