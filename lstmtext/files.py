"""Atomic file writes: a crash, a full disk or Ctrl-C never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600); ours get the umask's permissions like any other file.
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_output(path: Path, data: bytes) -> None:
    """Write a file the user named (--html, --png) without replacing what the path is.

    A symlink keeps pointing where it did (its target is written, atomically); a device or a
    FIFO (/dev/null, /dev/stdout) is written into, as any program writing a file would; a
    regular file is replaced atomically. A failure names the user's path, never our temp file.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(path))
        if target.exists() and not target.is_file():
            with open(target, "wb") as handle:
                handle.write(data)
            return
        atomic_write_bytes(target, data)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None


def os_error_text(error: OSError) -> str:
    """A short reason for a failed write: "No space left on device", not the list of
    (source, destination, reason) tuples that shutil.copytree raises, one per file."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        failures = error.args[0]
        first = failures[0][-1] if isinstance(failures[0], tuple) else failures[0]
        reason = re.match(r"\[Errno \d+\] ([^:]+)", str(first))
        text = reason.group(1) if reason else str(first).splitlines()[0][:200]
        return text + (f" ({len(failures)} files)" if len(failures) > 1 else "")
    return error.strerror or str(error).splitlines()[0][:200] or type(error).__name__
