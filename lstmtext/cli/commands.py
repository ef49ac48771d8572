"""Which subcommands the app has: one module per command, registered here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from lstmtext.cli import evaluate, info, inspect, train

    app.command("train", no_args_is_help=True)(train.train)
    app.command("evaluate", no_args_is_help=True)(evaluate.evaluate)
    app.command("info", no_args_is_help=True)(info.info)
    app.command("inspect", no_args_is_help=True)(inspect.inspect)
