"""`lstmtext train --nproc N`: the same command again, on N processes under torchrun.

The parent rebuilds the command line the user typed (less --nproc and --max-restarts), starts
torchrun with it and waits; each worker then runs `lstmtext train` as a rank. No torch at import.
"""

from __future__ import annotations

import signal
import subprocess
from enum import Enum

import typer

from lstmtext.errors import ConfigError


def command_line(ctx: typer.Context, leave_out: set[str]) -> list[str]:
    """`lstmtext [--debug] train ...` with the options the user typed, but those in `leave_out`."""
    options: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if name in leave_out or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        texts = [str(v.value if isinstance(v, Enum) else v) for v in values]
        if param.param_type_name == "argument":
            positional.extend(texts)
        elif getattr(param, "is_flag", False):
            flag = param.opts[0] if value else param.secondary_opts[0]
            options.append(flag)
        else:
            for text in texts:
                options += [param.opts[0], text]
    debug = ctx.parent is not None and ctx.parent.params.get("debug")
    return [*(["--debug"] if debug else []), "train", *options, "--", *positional]


def run_under_torchrun(nproc: int, max_restarts: int, args: list[str]) -> int:
    """Run `lstmtext ARGS` on `nproc` local processes under torchrun; its exit code."""
    from lstmtext import distributed

    if distributed.under_torchrun():
        raise ConfigError("--nproc starts torchrun itself; under torchrun, leave it out")
    child = subprocess.Popen(distributed.torchrun_command(nproc, args, max_restarts=max_restarts))
    # Ctrl-C reaches torchrun (our process group), SIGTERM sent to us alone is passed on; torchrun
    # sends it on to its workers, which save a checkpoint and exit. We wait for all of that.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum)),
    }
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
