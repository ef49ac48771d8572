"""Every subcommand end to end through the CLI, plus one real subprocess of the installed command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import TINY_TRAIN_ARGS


def test_version_and_help(cli) -> None:
    result = cli(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("lstmtext ")
    result = cli(["train", "--help"])
    assert result.exit_code == 0 and "--hidden" in result.stdout and "--random-state" in result.stdout


def test_train_writes_a_complete_run(tiny_lm: Path) -> None:
    for name in ("config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl", "best.json"):
        assert (tiny_lm / name).exists(), name
    last = tiny_lm / "checkpoints" / "last"
    for name in ("optimizer.safetensors", "trainer_state.json", "model.safetensors"):
        assert (last / name).exists(), name
    assert not (tiny_lm / ".lock").exists()


def test_evaluate_and_info(cli, tiny_lm: Path, tiny_corpus: Path) -> None:
    result = cli(["evaluate", "--model", str(tiny_lm), str(tiny_corpus), "--json"])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"loss", "perplexity", "bits_per_token", "bits_per_byte"}
    result = cli(["info", str(tiny_lm), "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["level"] == "char" and info["parameters"] > 0 and info["layers"] == 2
    result = cli(["info", str(tiny_lm)])
    assert result.exit_code == 0 and "parameters" in result.stdout
    tie = "yes" if info["tie_weights"] else "no"
    assert any(line.split()[-1:] == [tie] for line in result.stdout.splitlines() if "tie weights" in line)
    assert "best" in result.stdout and "{" not in result.stdout  # the record as words, not a dict


def test_train_resume_continues(cli, tiny_lm: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_lm, run)
    args = [a if a != "20" else "30" for a in TINY_TRAIN_ARGS]
    result = cli(["train", str(tiny_corpus), "--out", str(run), "--resume", *args])
    assert result.exit_code == 0, result.stderr
    state = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert state["step"] == 30


def test_errors_are_one_line(cli, tmp_path: Path) -> None:
    result = cli(["train", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "missing.txt" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli(["evaluate", "--model", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_usage_errors_exit_2(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    result = cli(["train", str(tiny_corpus), "--hidden", "-3", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "hidden" in result.stderr
    result = cli(["train", str(tiny_corpus), "--level", "syllable"])
    assert result.exit_code == 2


def test_installed_command_runs_as_a_subprocess(tiny_lm: Path) -> None:
    executable = shutil.which("lstmtext")
    command = [executable] if executable else [sys.executable, "-m", "lstmtext"]
    done = subprocess.run(
        [*command, "info", str(tiny_lm), "--json"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task"] == "lm"
    done = subprocess.run([sys.executable, "-m", "lstmtext", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "lstmtext" in done.stdout


def test_train_with_a_weight_average(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(["train", str(tiny_corpus), "--out", str(run), "--ema", "0.9", *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    assert json.loads((run / "config.json").read_text())["train"]["ema"] == 0.9
    tensors = (run / "checkpoints" / "last" / "optimizer.safetensors").read_bytes()
    assert b'"average.' in tensors
    result = cli(["info", str(run), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["weight_average_decay"] == 0.9
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "r"), "--ema", "1.5"])
    assert result.exit_code != 0 and "ema" in result.stderr


def test_train_with_awd_regularisers(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", str(tiny_corpus), "--out", str(run), "--locked-dropout", "--weight-drop", "0.4"]
    result = cli([*args, *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    model = json.loads((run / "config.json").read_text())["model"]
    assert model["locked_dropout"] is True and model["weight_drop"] == 0.4
    summary = json.loads(cli(["info", str(run), "--json"]).stdout)
    assert summary["locked_dropout"] is True and summary["weight_drop"] == 0.4
    assert cli(["generate", "--model", str(run), "--length", "20", "--random-state", "1"]).exit_code == 0
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "r"), "--weight-drop", "1"])
    assert result.exit_code != 0 and "weight drop" in result.stderr and "Traceback" not in result.stderr


def test_train_with_ar_and_tar(cli, tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(["train", str(tiny_corpus), "--out", str(run), "--ar", "2", "--tar", "1", *TINY_TRAIN_ARGS])
    assert result.exit_code == 0, result.stderr
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["activation_penalty"] == 2.0 and train["temporal_penalty"] == 1.0
    summary = json.loads(cli(["info", str(run), "--json"]).stdout)
    assert summary["activation_penalty"] == 2.0 and summary["temporal_penalty"] == 1.0
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "r"), "--tar", "-1"])
    assert result.exit_code != 0 and "TAR" in result.stderr and "Traceback" not in result.stderr
    result = cli(["train", str(tiny_corpus), "--out", str(tmp_path / "c"), "--task", "classify", "--ar", "2"])
    assert result.exit_code != 0 and "language-model" in result.stderr and "Traceback" not in result.stderr
