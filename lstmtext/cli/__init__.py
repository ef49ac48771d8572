"""The `lstmtext` command: a thin typer layer over the library.

`main()` maps every known error to one line on stderr and an exit code
(0 ok, 1 error, 2 usage, 130/143 interrupted); `--debug` or LSTMTEXT_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
import traceback
from collections.abc import Sequence

import typer
import typer.main

try:  # typer >= 0.22 ships its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on real click
    from click import ClickException  # type: ignore[assignment]

from lstmtext import __version__
from lstmtext.cli import commands
from lstmtext.errors import Interrupted, LstmTextError

app = typer.Typer(
    name="lstmtext",
    cls=commands.LazyGroup,
    help="Train stacked-LSTM models on text, sample from them, classify sentiment.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lstmtext {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """Train stacked-LSTM models on text, sample from them, classify sentiment."""


# The commands are imported as they run (commands.LazyGroup), inside run(): a Ctrl-C while torch
# imports is mapped there like any other interruption, to one line and 130 (and so it is where
# main() loads the command beforehand).


def _error_line(message: str) -> None:
    from lstmtext.cli.untrusted import literal

    # One line, whatever the message held; a file name's escapes (`$'\e]0;...\a'`) shown, not run.
    first = literal(" ".join(str(message).split()))
    sys.stderr.write(f"lstmtext: error: {first}\n")
    sys.stderr.flush()


def _reader_went_away() -> int:
    # Point stdout at /dev/null so Python's flush at exit does not raise into a traceback.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def run(argv: Sequence[str]) -> int:
    """Run the CLI on `argv` and return the exit code instead of exiting."""
    debug = "--debug" in argv or os.environ.get("LSTMTEXT_DEBUG", "") not in ("", "0")
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv), prog_name="lstmtext", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except ClickException as usage:
        usage.show()
        return usage.exit_code
    except typer.Abort:
        sys.stderr.write("lstmtext: interrupted\n")
        return 130
    except Interrupted as stopped:
        sys.stderr.write("lstmtext: interrupted\n")
        return stopped.exit_code
    except LstmTextError as error:
        if debug:
            traceback.print_exc()
        _error_line(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("lstmtext: interrupted\n")
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except SystemExit as exit_:
        # click turns a broken pipe into sys.exit(1); a reader that stops early (`| head`) is no error.
        cause = exit_.__context__
        if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            return _reader_went_away()
        raise
    except MemoryError:
        _error_line("out of memory: try a smaller --batch-size, --seq-len or --hidden")
        return 1
    except OSError as error:
        if debug:
            traceback.print_exc()
        _error_line(f"{error.strerror or error}: {error.filename}" if error.filename else str(error))
        return 1
    except Exception as error:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        _error_line(f"internal error: {type(error).__name__}: {error} (run with --debug for details)")
        return 1


def main() -> None:
    argv = sys.argv[1:]
    _load_with_the_collector_paused(argv)
    sys.exit(run(argv))


def _load_with_the_collector_paused(argv: Sequence[str]) -> None:
    """Import the command's modules with Python's cycle collector off, then freeze what they
    made out of its sight and turn the collector back on.

    Importing torch makes some hundreds of thousands of objects that live until exit; the
    collector walks them again and again while they are made and at every full collection
    after, a cost a short command such as `classify --explain` pays whole. Only the
    process does this, not run(): frozen objects are never collected, which in a test
    session would keep the garbage of earlier tests.
    """
    if not argv or argv[0] not in commands.COMMANDS:
        return
    gc.disable()
    try:
        commands.load(argv[0])  # cached: run() finds it loaded
    except KeyboardInterrupt:  # while torch imports: seconds, when Ctrl-C is likely
        sys.stderr.write("lstmtext: interrupted\n")
        sys.exit(130)
    except Exception:  # run() loads it again and says in one line what is wrong
        pass
    finally:
        gc.freeze()
        gc.enable()  # the command's own garbage (a training's cycles) is collected as ever
