"""`train --from`: a language model fine-tuned on new text keeps its tokenizer and shape, grows
a char or word vocabulary to the corpus (new rows at the mean), resumes, and takes embedded
models by name; compressed corpora are read as their text."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import lzma
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstmtext.config import ModelConfig
from lstmtext.core.model import LanguageModel
from lstmtext.lm.transfer import missing_tokens, rebuilt

from .conftest import TINY_TEXT, TINY_TRAIN_ARGS, error_line, run_cli, tiny_tokenizer

NEW_TEXT = "Ünïcødé ~ {braces} | and words the base never saw: zephyr quixotic.\n" * 20
FINE_TUNE_ARGS = ["--max-steps", "2", "--eval-every", "2", "--batch-size", "4", "--seq-len", "16"]


def test_grown_model_keeps_old_rows_and_starts_new_ones_at_the_mean() -> None:
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(vocab_size=10, embedding_dim=4, hidden_size=8, num_layers=1))
    bigger = rebuilt(model, dataclasses.replace(model.config, vocab_size=13))
    old, new = model.state_dict(), bigger.state_dict()
    for name in ("core.embedding.weight", "head.weight", "head.bias"):
        assert torch.equal(new[name][:10], old[name])
        for row in range(10, 13):
            assert torch.allclose(new[name][row], old[name].mean(dim=0))
    for name, tensor in old.items():
        if tensor.shape == new[name].shape:
            assert torch.equal(tensor, new[name])


def test_missing_tokens_of_each_level() -> None:
    char = tiny_tokenizer("char")
    assert missing_tokens(char, "To be Ü{") == ["Ü", "{"] or set(missing_tokens(char, "To be Ü{")) == {
        "Ü",
        "{",
    }
    word = tiny_tokenizer("word")
    assert missing_tokens(word, "to zephyr zephyr quixotic") == ["zephyr", "quixotic"]
    assert missing_tokens(word, "zephyr zephyr quixotic", min_frequency=2) == ["zephyr"]
    assert missing_tokens(tiny_tokenizer("bpe"), NEW_TEXT) == []


def test_with_tokens_keeps_every_old_id() -> None:
    char = tiny_tokenizer("char")
    grown_tokenizer = char.with_tokens(["Ü", "{"])
    assert grown_tokenizer.vocab_size == char.vocab_size + 2
    assert grown_tokenizer.encode(TINY_TEXT) == char.encode(TINY_TEXT)
    assert grown_tokenizer.decode(grown_tokenizer.encode("Ü{")) == "Ü{"
    assert len(grown_tokenizer.encode("Ü{")) == 2  # tokens of their own now, not UTF-8 bytes


@pytest.fixture
def new_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "new.txt"
    path.write_text(NEW_TEXT + TINY_TEXT, encoding="utf-8")
    return path


def test_train_from_a_run_grows_its_vocabulary_and_says_so(
    tiny_lm: Path, new_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ft"
    result = run_cli(["train", str(new_corpus), "--from", str(tiny_lm), "--out", str(out), *FINE_TUNE_ARGS])
    assert result.exit_code == 0, result.stderr
    base = json.loads((tiny_lm / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    added = config["train"]["added_tokens"]
    assert added == len(set(NEW_TEXT) - set(TINY_TEXT))
    assert f"grew by {added} tokens" in result.stderr
    assert config["model"]["vocab_size"] == base["model"]["vocab_size"] + added
    assert config["model"]["hidden_size"] == base["model"]["hidden_size"]
    assert config["model"]["dropout"] == 0.1 and config["train"]["lr"] == 1e-3  # fine-tuning's defaults
    assert config["train"]["start_from"] == str(tiny_lm)
    info = run_cli(["info", str(out), "--json"])
    assert json.loads(info.stdout)["added_tokens"] == added
    # resumed, the run keeps where it started
    resumed = run_cli(
        ["train", str(new_corpus), "--out", str(out), "--resume", *FINE_TUNE_ARGS[2:], "--max-steps", "4"]
    )
    assert resumed.exit_code == 0, resumed.stderr
    again = json.loads((out / "config.json").read_text())
    assert again["train"]["start_from"] == str(tiny_lm) and again["train"]["added_tokens"] == added
    assert load_file(out / "model.safetensors")["head.bias"].shape[0] == config["model"]["vocab_size"]


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--hidden", "64"], "hidden_size"),
        (["--layers", "3"], "num_layers"),
        (["--level", "word"], "level"),
        (["--embed", "32"], "embedding_dim"),
    ],
)
def test_options_that_change_the_model_are_refused(
    tiny_lm: Path, new_corpus: Path, tmp_path: Path, option: list[str], says: str
) -> None:
    result = run_cli(
        ["train", str(new_corpus), "--from", str(tiny_lm), "--out", str(tmp_path / "x"), *option]
    )
    assert result.exit_code == 2
    assert says in error_line(result.stderr) and "starting from" in result.stderr
    assert not (tmp_path / "x").exists()


def test_dropout_may_change(tiny_lm: Path, new_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    args = ["train", str(new_corpus), "--from", str(tiny_lm), "--out", str(out), "--dropout", "0.3"]
    result = run_cli([*args, *FINE_TUNE_ARGS])
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["model"]["dropout"] == 0.3


def test_a_classifier_is_not_a_language_model_to_start_from(
    tiny_classifier: Path, new_corpus: Path, tmp_path: Path
) -> None:
    result = run_cli(["train", str(new_corpus), "--from", str(tiny_classifier), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "classify model" in error_line(result.stderr)


def test_train_from_an_embedded_model_by_name(new_corpus: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ft"
    result = run_cli(["train", str(new_corpus), "--from", "shakespeare", "--out", str(out), *FINE_TUNE_ARGS])
    assert result.exit_code == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["start_from"].endswith("pretrained/shakespeare")
    assert config["model"]["hidden_size"] == 512


def test_a_folder_named_like_an_embedded_model_wins(tiny_lm: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_lm, tmp_path / "shakespeare")
    info = json.loads(run_cli(["info", "shakespeare", "--json"]).stdout)
    assert info["embedded_model"] is None and info["hidden_size"] != 512
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    info = json.loads(run_cli(["info", "shakespeare", "--json"]).stdout)
    assert info["embedded_model"] == "shakespeare" and info["hidden_size"] == 512


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_compressed_corpora_read_as_their_text(tiny_lm: Path, tmp_path: Path, suffix: str) -> None:
    plain = tmp_path / "c.txt"
    plain.write_text(TINY_TEXT, encoding="utf-8")
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[suffix]
    packed = tmp_path / f"c.txt{suffix}"
    with opener(packed, "wb") as handle:
        handle.write(TINY_TEXT.encode("utf-8"))
    figures = [run_cli(["evaluate", "-m", str(tiny_lm), str(path), "--json"]) for path in (plain, packed)]
    assert figures[0].exit_code == 0 and figures[1].exit_code == 0, figures[1].stderr
    assert json.loads(figures[0].stdout)["loss"] == json.loads(figures[1].stdout)["loss"]
    result = run_cli(["train", str(packed), "--out", str(tmp_path / "run"), *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr


def test_a_corrupt_compressed_corpus_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.txt.gz"
    bad.write_bytes(b"not gzip at all")
    result = run_cli(["train", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "not a valid gz file" in error_line(result.stderr)
