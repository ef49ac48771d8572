from __future__ import annotations

import hashlib
import io
import re
import urllib.request
import zipfile
from pathlib import Path

import pytest

from lstmtext.corpora import catalogue, resolve
from lstmtext.corpora.resolve import REPOSITORY_ROOT, CorpusEntry, CorpusFile, default_search_dirs
from lstmtext.corpora.samples import sample_labelled, sample_text, write_sample_labelled, write_sample_text
from lstmtext.data.sources import read_text
from lstmtext.errors import CorpusError

SHARED = REPOSITORY_ROOT.parent / "shared" / "corpora"
needs_shared = pytest.mark.skipif(not (SHARED / "SOURCES.md").exists(), reason="shared corpora not present")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only file:// addresses may be opened; anything else fails the test."""
    real = urllib.request.urlopen

    def guarded(url: str, *args: object, **kwargs: object) -> object:
        assert url.startswith("file://"), f"test tried the network: {url}"
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


def _entry(name: str, files: list[CorpusFile], download: bool = True) -> dict[str, CorpusEntry]:
    return {
        name: CorpusEntry(name=name, description="test", files=tuple(files), download=download, note="n/a")
    }


def _file(
    path: str, data: bytes, role: str = "text", url: str | None = None, member: str | None = None
) -> CorpusFile:
    return CorpusFile(path, role, "text", len(data), hashlib.sha256(data).hexdigest(), url, member)


# ---- the catalogue


def test_catalogue_entries_are_complete() -> None:
    entries = catalogue()
    assert set(entries) == {
        "tinyshakespeare", "ptb", "sst2", "sst2-phrases", "imdb", "imdb-unsup", "mr", "tweets",
        "amazon-books", "amazon-dvd", "amazon-electronics", "amazon-kitchen",
    }  # fmt: skip
    for entry in entries.values():
        for file in entry.files:
            assert file.path.startswith(f"{entry.folder}/") and entry.name.startswith(entry.folder)
            assert re.fullmatch(r"[0-9a-f]{64}", file.sha256)
            assert file.role in {"train", "valid", "test", "all", "text"}
            assert file.kind in {"text", "labelled"}
            assert file.bytes > 0
            if entry.download:
                assert file.url and file.url.startswith("https://raw.githubusercontent.com/")
        assert entry.download == (entry.name in {"tinyshakespeare", "ptb"})
    assert entries["ptb"].roles == ("train", "valid", "test")


@needs_shared
def test_catalogue_matches_sources_md() -> None:
    sources = (SHARED / "SOURCES.md").read_text(encoding="utf-8")
    for entry in catalogue().values():
        for file in entry.files:
            row = next(line for line in sources.splitlines() if f"`{file.path}`" in line)
            assert file.sha256 in row and f"{file.bytes:,}" in row


# ---- finding corpora on disk


@needs_shared
def test_resolve_shared_corpora() -> None:
    shakespeare = resolve("tinyshakespeare", search_dirs=[SHARED], allow_download=False)
    assert shakespeare.path() == SHARED / "tinyshakespeare" / "input.txt"
    assert shakespeare.path("text") == shakespeare.path()
    ptb = resolve("ptb", env={}, allow_download=False)  # found through ../shared/corpora
    assert ptb.root.resolve() == SHARED.resolve() / "ptb"
    assert ptb.path("valid").name == "valid.txt" and ptb.path().name == "train.txt"
    with pytest.raises(CorpusError, match="no 'all' file"):
        ptb.path("all")


@needs_shared
def test_read_text_accepts_a_corpus_name() -> None:
    text = read_text(["tinyshakespeare"], env={"LSTMTEXT_CORPORA": str(SHARED)}, allow_download=False)
    assert text.startswith("First Citizen:") and len(text) == 1_115_394
    valid = read_text(["ptb:valid"], env={"LSTMTEXT_CORPORA": str(SHARED)}, allow_download=False)
    assert len(valid) == 399_782
    with pytest.raises(CorpusError, match="no 'dev' file"):
        read_text(["ptb:dev"], env={"LSTMTEXT_CORPORA": str(SHARED)}, allow_download=False)


def test_env_var_dir_comes_first(tmp_path: Path) -> None:
    data = b"hello corpus\n"
    entries = _entry("tiny", [_file("tiny/input.txt", data)])
    for folder in ("first", "second"):
        (tmp_path / folder / "tiny").mkdir(parents=True)
        (tmp_path / folder / "tiny" / "input.txt").write_bytes(data)
    env = {"LSTMTEXT_CORPORA": f"{tmp_path / 'first'}:{tmp_path / 'second'}"}
    location = resolve("tiny", env=env, entries=entries, allow_download=False)
    assert location.root == tmp_path / "first" / "tiny"
    assert location.path().read_bytes() == data


def test_default_search_dirs(tmp_path: Path) -> None:
    dirs = default_search_dirs({"LSTMTEXT_CORPORA": "/data/a"}, cwd=tmp_path / "work")
    assert dirs[:3] == [Path("/data/a"), tmp_path / "work" / "corpora", tmp_path / "shared" / "corpora"]
    assert REPOSITORY_ROOT / "corpora" in dirs


def test_wrong_size_is_skipped_and_wrong_content_refused(tmp_path: Path) -> None:
    data = b"0123456789\n"
    entries = _entry("tiny", [_file("tiny/input.txt", data)], download=False)
    (tmp_path / "a" / "tiny").mkdir(parents=True)
    (tmp_path / "a" / "tiny" / "input.txt").write_bytes(b"short\n")
    (tmp_path / "b" / "tiny").mkdir(parents=True)
    (tmp_path / "b" / "tiny" / "input.txt").write_bytes(b"9876543210\n")  # same size, other bytes
    location = resolve("tiny", search_dirs=[tmp_path / "a", tmp_path / "b"], entries=entries)
    assert location.root == tmp_path / "b" / "tiny"
    with pytest.raises(CorpusError, match="does not match the catalogue"):
        location.path()
    unchecked = resolve("tiny", search_dirs=[tmp_path / "b"], entries=entries, verify=False)
    assert unchecked.path().name == "input.txt"


def test_not_found_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unknown corpus 'nope'"):
        resolve("nope", search_dirs=[tmp_path])
    with pytest.raises(CorpusError, match="not downloadable"):
        resolve("sst2", search_dirs=[tmp_path])
    with pytest.raises(CorpusError, match="downloads are off"):
        resolve("tinyshakespeare", search_dirs=[tmp_path], allow_download=False)


# ---- downloading (file:// addresses only)


def test_download_into_first_writable_dir(tmp_path: Path) -> None:
    data = sample_text(3_000).encode()
    source = tmp_path / "remote.txt"
    source.write_bytes(data)
    entries = _entry("tiny", [_file("tiny/input.txt", data, url=source.as_uri())])
    target = tmp_path / "new" / "corpora"  # does not exist yet
    location = resolve("tiny", search_dirs=[target], entries=entries)
    assert location.path() == target / "tiny" / "input.txt"
    assert location.path().read_bytes() == data
    assert sorted(p.name for p in (target / "tiny").iterdir()) == ["input.txt"]  # no .part left
    # Found on disk the second time.
    source.unlink()
    assert resolve("tiny", search_dirs=[target], entries=entries).path().read_bytes() == data


def test_download_extracts_zip_members(tmp_path: Path) -> None:
    members = {"ptb.train.txt": b"a b c\n", "ptb.valid.txt": b"d e\n"}
    archive = tmp_path / "ptb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in members.items():
            z.writestr(f"data/{name}", data)
    files = [
        _file("p/train.txt", members["ptb.train.txt"], "train", archive.as_uri(), "ptb.train.txt"),
        _file("p/valid.txt", members["ptb.valid.txt"], "valid", archive.as_uri(), "ptb.valid.txt"),
    ]
    location = resolve("p", search_dirs=[tmp_path / "out"], entries=_entry("p", files))
    assert location.path("valid").read_bytes() == b"d e\n"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["p", "train.txt", "valid.txt"]


def test_download_with_wrong_hash_is_not_kept(tmp_path: Path) -> None:
    source = tmp_path / "remote.txt"
    source.write_bytes(b"tampered!\n")
    file = _file("tiny/input.txt", b"original\n", url=source.as_uri())
    with pytest.raises(CorpusError, match="not kept"):
        resolve("tiny", search_dirs=[tmp_path / "out"], entries=_entry("tiny", [file]))
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_download_failure_is_one_line(tmp_path: Path) -> None:
    file = _file("tiny/input.txt", b"x\n", url=(tmp_path / "absent.txt").as_uri())
    with pytest.raises(CorpusError, match="could not download") as error:
        resolve("tiny", search_dirs=[tmp_path / "out"], entries=_entry("tiny", [file]))
    assert "\n" not in str(error.value)


@needs_shared
def test_real_catalogue_download_with_a_stand_in_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = catalogue()["tinyshakespeare"]
    served: list[str] = []

    def fake_urlopen(url: str, timeout: float = 0) -> io.BytesIO:
        served.append(url)
        return io.BytesIO((SHARED / "tinyshakespeare" / "input.txt").read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    location = resolve("tinyshakespeare", search_dirs=[tmp_path])
    assert served == [entry.files[0].url]
    assert location.path() == tmp_path / "tinyshakespeare" / "input.txt"


# ---- samples and the README


def test_samples_are_deterministic(tmp_path: Path) -> None:
    a = write_sample_text(tmp_path / "a.txt", 1_000, seed=4).read_bytes()
    b = write_sample_text(tmp_path / "b.txt", 1_000, seed=4).read_bytes()
    assert (
        a == b and len(a) == 1_000 and a != write_sample_text(tmp_path / "c.txt", 1_000, seed=5).read_bytes()
    )
    rows = (write_sample_labelled(tmp_path / "s.tsv", 20, seed=1)).read_text().splitlines()
    assert len(rows) == 20 and all(r.split("\t")[0] in {"positive", "negative"} for r in rows)
    assert sample_labelled(20, seed=1) == [tuple(r.split("\t")) for r in rows]


@needs_shared
def test_readme_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPOSITORY_ROOT / "corpora" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "corpora/README.md", "exec"), {})
    assert "ptb valid.txt train.txt" in capsys.readouterr().out
