"""`lstmtext average`: the mean of checkpoints of one model, and what it refuses."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lstmtext.errors import CheckpointError
from lstmtext.runs.average import average_checkpoints
from lstmtext.runs.checkpoint import load_checkpoint, read_config

from .conftest import TINY_TEXT, random_checkpoint, tiny_tokenizer


def step_checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-*"))


def test_average_is_the_mean_of_the_weights(tiny_lm: Path) -> None:
    steps = step_checkpoints(tiny_lm)
    assert len(steps) >= 2  # 20 steps, evaluated every 10: step-10 and step-20 kept
    sources = [tiny_lm, *steps]
    states = [load_checkpoint(path).model.state_dict() for path in sources]
    averaged = average_checkpoints(sources).model.state_dict()
    for name, tensor in averaged.items():
        expected = sum(state[name] for state in states) / len(states)
        assert torch.allclose(tensor, expected, atol=1e-6), name
    assert not torch.equal(states[1]["core.lstm.weight_hh_l0"], states[2]["core.lstm.weight_hh_l0"])


def test_average_cli_writes_a_checkpoint_that_evaluates(cli, tiny_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "avg"
    steps = [str(path) for path in step_checkpoints(tiny_lm)]
    result = cli(["average", str(tiny_lm), *steps, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert {"config.json", "tokenizer.json", "model.safetensors", "averaged.json"} <= {
        path.name for path in out.iterdir()
    }
    summary = json.loads(cli(["info", str(out), "--json"]).stdout)
    assert summary["averaged_from"] == [str(tiny_lm), *steps]
    corpus = tmp_path / "held-out.txt"
    corpus.write_text("To be, or not to be, that is the question:\n" * 4, encoding="utf-8")
    result = cli(["evaluate", "--model", str(out), str(corpus), "--json"])
    assert result.exit_code == 0, result.stderr
    again = cli(["average", str(tiny_lm), *steps, "--out", str(out)])  # never over a checkpoint
    assert again.exit_code == 1 and "already exists" in again.stderr
    (out / "averaged.json").write_text("{not json", encoding="utf-8")
    broken = cli(["info", str(out)])
    assert broken.exit_code == 1 and "averaged.json" in broken.stderr and "Traceback" not in broken.stderr


def test_average_refuses_other_models_and_lone_checkpoints(cli, tiny_lm: Path, tmp_path: Path) -> None:
    shape = read_config(tiny_lm).model
    wider = random_checkpoint(tmp_path / "wider", replace(shape, hidden_size=24))
    for sources, message in (
        ([tiny_lm, wider], "not the same model"),
        ([tiny_lm], "at least two"),
        ([tiny_lm, tmp_path / "missing"], "does not exist"),
    ):
        result = cli(["average", *map(str, sources), "--out", str(tmp_path / "out")])
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # The same model on as many distinct characters, one of them another.
    other = random_checkpoint(tmp_path / "other", shape, tiny_tokenizer(text=TINY_TEXT.replace("q", "z")))
    with pytest.raises(CheckpointError, match="another tokenizer"):
        average_checkpoints([tiny_lm, other])
