"""Which subcommands the app has: one module per command, registered here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from lstmtext.cli import average, evaluate, info, inspect, train
    from lstmtext.cli import classify as classify_command
    from lstmtext.cli import export as export_command
    from lstmtext.cli import generate as generate_command

    app.command("train", no_args_is_help=True)(train.train)
    app.command("evaluate", no_args_is_help=True)(evaluate.evaluate)
    app.command("generate")(generate_command.generate)
    app.command("classify", no_args_is_help=True)(classify_command.classify)
    app.command("info", no_args_is_help=True)(info.info)
    app.command("inspect", no_args_is_help=True)(inspect.inspect)
    app.command("export", no_args_is_help=True)(export_command.export)
    app.command("average", no_args_is_help=True)(average.average)
