"""Find a named corpus on disk, or download it, and check it against the catalogue.

A corpus lives in a folder named after it inside a *search dir*, with the file names of
``catalogue.json`` (``<dir>/ptb/train.txt``, ...). The search dirs, in order:

1. each folder in ``$LSTMTEXT_CORPORA`` (``os.pathsep``-separated),
2. ``./corpora`` and ``../shared/corpora``, relative to the working directory,
3. the same two relative to the repository root (the parent of this package's folder).

The first dir holding every file of the corpus (at the catalogue's size) wins. Otherwise a
downloadable corpus is fetched into the first writable search dir, checked against its
sha256 and renamed into place, so a half-finished download is never found later. Files
found on disk are checked lazily: ``CorpusLocation.path(role)`` hashes a file the first time
it is asked for.

The environment is read only when the caller passes ``env=None`` (the CLI edge); library
code passes the mapping it was given.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lstmtext.errors import CorpusError

ENV_VAR = "LSTMTEXT_CORPORA"
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROLES = ("train", "text", "all")  # what path() returns when no role is asked for


@dataclass(frozen=True)
class CorpusFile:
    path: str  # relative to the search dir, e.g. "ptb/train.txt"
    role: str  # train | valid | test | all | text
    kind: str  # text | labelled (label<TAB>text lines)
    bytes: int
    sha256: str
    url: str | None = None
    member: str | None = None  # the file's name inside the zip at url


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    description: str
    files: tuple[CorpusFile, ...]
    download: bool
    note: str = ""
    license: str = ""
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(f.role for f in self.files)

    @property
    def kind(self) -> str:
        return self.files[0].kind

    @property
    def folder(self) -> str:
        """The folder its files lie in, under a corpora folder (several entries may share one)."""
        return self.files[0].path.split("/")[0]


@dataclass
class CorpusLocation:
    """Where a named corpus was found: ``root`` is its own folder, ``path(role)`` one file."""

    name: str
    root: Path
    entry: CorpusEntry
    verify: bool = True
    _verified: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def roles(self) -> tuple[str, ...]:
        return self.entry.roles

    def path(self, role: str | None = None) -> Path:
        """The file with this role; without one, the file to train on (train, text or all)."""
        if role is None:
            role = next(r for r in (*DEFAULT_ROLES, *self.roles) if r in self.roles)
        file = next((f for f in self.entry.files if f.role == role), None)
        if file is None:
            raise CorpusError(f"corpus {self.name} has no {role!r} file (it has {', '.join(self.roles)})")
        path = self.root.parent / file.path
        if self.verify and role not in self._verified:
            digest = _sha256_cached(path)
            if digest != file.sha256:
                raise CorpusError(
                    f"{path} does not match the catalogue (sha256 {digest[:12]}..., expected "
                    f"{file.sha256[:12]}...): damaged or a different version; delete it to fetch it again"
                )
            self._verified.add(role)
        return path


@cache
def _load_catalogue() -> dict[str, CorpusEntry]:
    data = json.loads(resources.files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8"))
    return {
        name: CorpusEntry(
            name=name,
            description=item["description"],
            files=tuple(CorpusFile(**f) for f in item["files"]),
            download=item["download"],
            note=item.get("note", ""),
            license=item.get("license", ""),
            source=item.get("source", {}),
        )
        for name, item in data["corpora"].items()
    }


def catalogue() -> dict[str, CorpusEntry]:
    """The named corpora of ``catalogue.json``, by name."""
    return dict(_load_catalogue())


def default_search_dirs(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The search dirs in order (see the module docstring), without duplicates."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    dirs = [Path(p).expanduser() for p in env.get(ENV_VAR, "").split(os.pathsep) if p]
    for base in (cwd, REPOSITORY_ROOT):
        dirs += [base / "corpora", base.parent / "shared" / "corpora"]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in {u.resolve() for u in unique}:
            unique.append(d)
    return unique


def resolve(
    name: str,
    *,
    search_dirs: Sequence[Path] | None = None,
    env: Mapping[str, str] | None = None,
    allow_download: bool = True,
    verify: bool = True,
    entries: Mapping[str, CorpusEntry] | None = None,
) -> CorpusLocation:
    """Find the corpus ``name`` in the search dirs, else download it; raise CorpusError if neither works.

    ``search_dirs`` replaces the default list (then ``env`` is not used); ``entries`` replaces
    the catalogue (for tests and private catalogues).
    """
    entries = _load_catalogue() if entries is None else entries
    entry = entries.get(name)
    if entry is None:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(entries))}")
    dirs = [Path(d) for d in search_dirs] if search_dirs is not None else default_search_dirs(env)
    for d in dirs:
        if all(_size_matches(d / f.path, f) for f in entry.files):
            return CorpusLocation(name, d / entry.folder, entry, verify)

    searched = ", ".join(str(d) for d in dirs) or "no folders"
    if not entry.download:
        raise CorpusError(f"corpus {name} not found in {searched}, and it is not downloadable: {entry.note}")
    if not allow_download:
        raise CorpusError(f"corpus {name} not found in {searched}, and downloads are off")
    target = next((d for d in dirs if _writable(d)), None)
    if target is None:
        raise CorpusError(f"corpus {name} not found, and none of {searched} is writable to download it into")
    _download(entry, target)
    location = CorpusLocation(name, target / entry.folder, entry, verify)
    location._verified.update(entry.roles)  # _download checked every file
    return location


def _size_matches(path: Path, file: CorpusFile) -> bool:
    try:
        return path.stat().st_size == file.bytes
    except OSError:
        return False


def _writable(directory: Path) -> bool:
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def _download(entry: CorpusEntry, base: Path) -> None:
    fetched: dict[str, Path] = {}  # url -> downloaded temp file; a zip serves several files
    try:
        for file in entry.files:
            target = base / file.path
            if _size_matches(target, file) and _sha256(target) == file.sha256:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if file.url is None:
                raise CorpusError(f"corpus {entry.name}: {file.path} has no download address")
            if file.url not in fetched:
                fetched[file.url] = _fetch(file.url, target.parent)
            temp = _temp_beside(target)
            try:
                _copy_out(fetched[file.url], file, temp)
                digest = _sha256(temp)
                if digest != file.sha256:
                    raise CorpusError(
                        f"download of {file.path} from {file.url} has sha256 {digest[:12]}..., expected "
                        f"{file.sha256[:12]}...; not kept"
                    )
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
    finally:
        for temp in fetched.values():
            temp.unlink(missing_ok=True)


def _fetch(url: str, directory: Path) -> Path:
    temp = _temp_beside(directory / "download")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, temp.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as error:
        temp.unlink(missing_ok=True)
        reason = getattr(error, "reason", error)
        raise CorpusError(f"could not download {url}: {reason}") from None
    return temp


def _copy_out(download: Path, file: CorpusFile, destination: Path) -> None:
    if file.member is None:
        shutil.copyfile(download, destination)
        return
    try:
        with zipfile.ZipFile(download) as archive:
            # Match by base name: the archive may or may not keep a folder around the files.
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == file.member]
            if not names:
                raise CorpusError(f"{file.url} has no {file.member}")
            with archive.open(names[0]) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    except zipfile.BadZipFile:
        raise CorpusError(f"{file.url} is not a valid zip archive") from None


def _temp_beside(path: Path) -> Path:
    # A fresh name, not an mkstemp file: those are private (0600), corpora are often shared.
    return path.with_name(f".{path.name}.{os.urandom(6).hex()}.part")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    """sha256 of a file, remembered for this process while its size and mtime stay the same."""
    try:
        stat = path.stat()
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror}") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = _sha256(path)
    return _HASHES[key]
