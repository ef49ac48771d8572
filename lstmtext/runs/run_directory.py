"""The run directory a training writes into (`--out`): claimed, checked, cleaned, given back,
and the metrics.jsonl it logs into.

    with claim_run_directory(out_dir, resume=False, overwrite=True) as run:
        ...  # read the data, train the tokenizer: what can still fail on bad input
        run.begin()  # the old run's files go now, just before the new run writes its own
        ...  # train and save into out_dir

A new run never lands on top of another: a folder that already holds files is refused unless
the run resumes it or `overwrite` asks for the old run's files to be cleared first. Otherwise
the new model.safetensors, best.json and metrics.jsonl would replace the old ones while the old
step checkpoints stayed beside the new, and `lstmtext average` would mix two runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmtext.errors import CheckpointError, OutputLocked
from lstmtext.runs.checkpoint_files import (
    BEST,
    CONFIG,
    LOCK,
    METRICS,
    OPTIMIZER,
    TOKENIZER,
    TRAINER_STATE,
    WEIGHTS,
)

CHECKPOINTS = "checkpoints"
# What a run writes into its folder; --overwrite removes these and nothing else.
RUN_ENTRIES = (CONFIG, TOKENIZER, WEIGHTS, BEST, METRICS, OPTIMIZER, TRAINER_STATE, CHECKPOINTS)


@dataclass
class RunDirectory:
    path: Path
    overwrite: bool

    def begin(self) -> None:
        """Clear the old run (with overwrite), once the new one has read its data: a bad corpus
        given with --overwrite must not cost the run that was there."""
        if self.overwrite:
            clear_run(self.path)
            self.overwrite = False


@contextlib.contextmanager
def claim_run_directory(out_dir: Path, *, resume: bool, overwrite: bool) -> Iterator[RunDirectory]:
    """Lock `out_dir`, refuse or clear an earlier run's files, remove staging files a killed
    run left, and on failure remove the folder again if this call created it and it is empty."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"--out {out_dir} is a file, not a folder")
    created = not out_dir.exists()
    try:
        with OutputLock(out_dir):
            remove_stale_staging(out_dir)
            # Checked under the lock: another run cannot fill the folder between check and start.
            if not resume:
                held = sorted(e.name for e in out_dir.iterdir() if not e.name.startswith(LOCK))
                if held and not overwrite:
                    shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
                    raise CheckpointError(
                        f"--out {out_dir} already holds files ({shown}): continue that run with "
                        "--resume, pass --overwrite to replace it, or pick another --out"
                    )
                if held:
                    check_is_run(out_dir)
            yield RunDirectory(out_dir, overwrite=overwrite and not resume)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only succeeds when nothing was written
        raise


def check_is_run(out_dir: Path) -> None:
    """Refuse to clear a folder whose files of our names are not an lstmtext run's:
    --overwrite must never delete a user's own config.json or checkpoints/ that merely share
    our names. Files of other names are never touched, so they do not matter here."""
    ours = [
        out_dir / name for name in RUN_ENTRIES if (out_dir / name).exists() or (out_dir / name).is_symlink()
    ]
    if not ours:
        return
    strangers = []
    config = out_dir / CONFIG
    if config.is_symlink() or (config.exists() and not _is_lstmtext_config(config)):
        strangers.append(f"{CONFIG} is not an lstmtext config")
    checkpoints = out_dir / CHECKPOINTS
    if checkpoints.is_symlink() or (checkpoints.exists() and not checkpoints.is_dir()):
        strangers.append(f"{CHECKPOINTS} is not a run's")
    elif checkpoints.is_dir():
        strangers += [
            f"{CHECKPOINTS}/{entry.name} is not a checkpoint"
            for entry in sorted(checkpoints.iterdir())
            if not _is_checkpoint_entry(entry)
        ]
    # A run killed early may have left only its log; weights or a tokenizer without a config of
    # ours may be anyone's (a Hugging Face folder holds the same names).
    weighty = sorted(p.name for p in ours if p.name not in (BEST, METRICS, CHECKPOINTS))
    if not strangers and weighty and not (config.is_file() or (checkpoints / "last").is_dir()):
        strangers.append(f"no {CONFIG} of a run beside {', '.join(weighty)}")
    strangers += [
        f"{name} is not an lstmtext log" for name in (BEST, METRICS) if not _is_our_log(out_dir / name)
    ]
    if strangers:
        shown = "; ".join(strangers[:3]) + ("; ..." if len(strangers) > 3 else "")
        raise CheckpointError(
            f"--out {out_dir} does not hold an lstmtext run ({shown}): --overwrite replaces only "
            "a run's files, so nothing was removed; pick another --out"
        )


def _is_lstmtext_config(path: Path) -> bool:
    try:
        if path.stat().st_size > 1 << 20:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and "format_version" in data and isinstance(data.get("model"), dict)


def _is_our_log(path: Path) -> bool:
    """best.json is one JSON object with a step; metrics.jsonl one such object a line (its last
    line maybe torn by a crash)."""
    if not (path.exists() or path.is_symlink()):
        return True
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 30:
        return False
    try:
        with path.open(encoding="utf-8") as handle:
            text = handle.read(1 << 20)
        lines = [text] if path.name == BEST else [line for line in text.splitlines() if line.strip()]
        records = []
        for index, line in enumerate(lines):
            try:
                records.append(json.loads(line))
            except ValueError:
                if path.name == BEST or index < len(lines) - 1:
                    return False
    except (OSError, UnicodeDecodeError, RecursionError):
        return False
    return bool(records) and all(isinstance(r, dict) and "step" in r for r in records)


def _is_checkpoint_entry(entry: Path) -> bool:
    """What write_last and its staging leave in checkpoints/: last, step-N, hidden staging."""
    name = entry.name
    if entry.is_symlink() or not entry.is_dir():
        return name.startswith(".") and name.endswith(".tmp")
    return name == "last" or name.startswith((".last", "step-")) or name.endswith(".partial")


def clear_run(out_dir: Path) -> None:
    """Remove an earlier run's files (and only those) from `out_dir`."""
    for name in RUN_ENTRIES:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_stale_staging(out_dir: Path) -> None:
    """Temp files and half-written checkpoint folders of a run killed mid-save (kill -9).

    Called with the lock held, so no live writer owns them. `.last.old` stays while `last` is
    missing: a crash between the two renames of a save leaves the checkpoint there alone.
    """
    checkpoints = out_dir / CHECKPOINTS
    for folder in (out_dir, checkpoints):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name
            if not name.startswith("."):
                continue
            if name.startswith(f"{LOCK}."):  # OutputLock's temp file: its writer may be taking the lock
                if name.endswith(".tmp") and not _alive(name.split(".")[2]):
                    entry.unlink(missing_ok=True)
            elif name.endswith(".tmp") and entry.is_file():
                entry.unlink(missing_ok=True)
            elif folder == checkpoints and entry.is_dir() and _is_staging(name, checkpoints):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _is_staging(name: str, checkpoints: Path) -> bool:
    if name.endswith(".partial"):  # a step folder being copied
        return True
    if name == ".last.old":
        return (checkpoints / "last").exists()
    return name.startswith(".last.")  # write_resume_checkpoint's mkdtemp folder


class OutputLock:
    """A lock file in the run directory so two trainings never write into one."""

    # An empty lock may be one another writer is filling (earlier lstmtext created the file,
    # then wrote its PID); only after this long is it taken for the leftover of a crash.
    EMPTY_GRACE_SECONDS = 10.0

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK
        self.held = False

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            if not self._stale():
                raise OutputLocked(
                    f"{self.path.parent} is in use by another training (lock {self.path}); "
                    "choose another --out or wait for it to finish"
                )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        raise OutputLocked(f"cannot take the lock {self.path}")

    def _create(self) -> bool:
        """Make the lock appear already holding our PID: written to a temp file, then linked
        into place (link fails if the lock exists). A lock created empty and filled after would
        be seen empty, taken for stale, and shared by two runs."""
        temp = self.path.with_name(f"{LOCK}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        temp.write_text(str(os.getpid()))
        try:
            os.link(temp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, then fill
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return True
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    def _stale(self) -> bool:
        try:
            text = self.path.read_text().strip()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again
        except OSError:
            return False
        if not text:
            return age > self.EMPTY_GRACE_SECONDS
        try:
            pid = int(text)
        except ValueError:
            return True
        if pid <= 0 or pid == os.getpid():
            return pid <= 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.held = False


def append_metrics(directory: Path, record: dict[str, Any]) -> None:
    """Append one record to metrics.jsonl as it happens, so `tail -f` follows a run.

    Checkpoints rewrite the whole file atomically from the trainer's history; between them a
    crash can at worst tear the last appended line, which `read_metrics` skips.
    """
    with open(directory / METRICS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(directory: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; a line torn by a crash is left out."""
    path = directory / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records
