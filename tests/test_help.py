"""Help that is fast and reads cleanly: the top level imports no torch, flags show no type."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys

from lstmtext.cli.commands import COMMANDS, unwrap


def test_top_level_help_and_completion_do_not_import_torch() -> None:
    # A fresh interpreter: this one has torch loaded already.
    script = (
        "import sys\n"
        "from lstmtext.cli import run\n"
        "assert run(['--help']) == 0\n"
        "assert run([]) in (0, 2)\n"  # no arguments: the help, as a usage exit
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'tokenizers'))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    for name in COMMANDS:
        assert name in done.stdout
    environment = {
        **os.environ,
        "_LSTMTEXT_COMPLETE": "complete_bash",
        "COMP_WORDS": "lstmtext ",
        "COMP_CWORD": "1",
    }
    script = (
        "import sys\nfrom lstmtext.cli import main\n"
        "try:\n    main()\nfinally:\n    print('TORCH', 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.stdout.split() == [*COMMANDS, "TORCH", "False"], done.stdout + done.stderr


def test_train_help_does_not_import_torch() -> None:
    for command in ("train", "train-classifier"):
        script = f"import sys\nfrom lstmtext.cli import run\nassert run(['{command}', '--help']) == 0\n"
        script += "print('torch' in sys.modules)"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.splitlines()[-1] == "False", (
            done.stdout[-300:] + done.stderr
        )


# What `train` offers that a classifier has no use for (sequence windows, the LM's softmax,
# text decoding, AR/TAR, several processes), and what only a classifier reads.
LANGUAGE_MODEL_ONLY = {
    "--seq-len", "--vary-seq-len", "--tie-weights", "--softmax-cutoff", "--eval-batches",
    "--encoding", "--errors", "--cache-dir", "--ar", "--tar", "--nproc", "--max-restarts",
}  # fmt: skip
CLASSIFIER_ONLY = {
    "--task", "--label-column", "--text-column", "--max-tokens", "--class-weights",
}  # fmt: skip
# The one training loop's options: both commands, one meaning.
SHARED = {
    "--from",  # a language model fine-tunes one; a classifier starts from one
    "--unfreeze",
    "--discriminative-lr",
    "--resume",
    "--keep-last",
    "--optimizer",
    "--schedule",
    "--ema",
}


def shown_options(name: str) -> set[str]:
    from lstmtext.cli.commands import load

    return {opt for p in load(name).params if not getattr(p, "hidden", False) for opt in p.opts}


def test_each_training_command_shows_only_its_own_options(cli, monkeypatch) -> None:
    train, classifier = shown_options("train"), shown_options("train-classifier")
    assert not train & CLASSIFIER_ONLY and train >= LANGUAGE_MODEL_ONLY
    assert not classifier & LANGUAGE_MODEL_ONLY and CLASSIFIER_ONLY - {"--task"} <= classifier
    assert train & classifier >= SHARED
    monkeypatch.setenv("COLUMNS", "200")
    shown = set(re.findall(r"--[a-z][a-z-]*", cli(["train", "--help"]).stdout))
    assert not shown & CLASSIFIER_ONLY and "--seq-len" in shown
    shown = set(re.findall(r"--[a-z][a-z-]*", cli(["train-classifier", "--help"]).stdout))
    assert not shown & LANGUAGE_MODEL_ONLY and "--max-tokens" in shown


def test_the_summaries_are_the_docstrings_first_lines() -> None:
    for name, entry in COMMANDS.items():
        function = getattr(importlib.import_module(f"lstmtext.cli.{entry.module}"), entry.function)
        first = unwrap(inspect.getdoc(function)).split("\n\n")[0]
        assert entry.summary == first, name


def test_command_help_at_80_columns_has_no_flag_types_and_no_ragged_lines(cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for name in COMMANDS:
        result = cli([name, "--help"])
        assert result.exit_code == 0, result.stderr
        assert "<bool>" not in result.stdout, name
        assert "--help" in result.stdout and "-h" in result.stdout
        assert all(len(line) <= 80 for line in result.stdout.splitlines()), name
    result = cli(["train", "-h"])
    assert "--resume" in result.stdout and "<bool>" not in result.stdout
    result = cli(["--help"])
    assert result.exit_code == 0 and "<bool>" not in result.stdout and "--debug" in result.stdout


def test_unwrap_joins_each_paragraphs_lines() -> None:
    text = "First line.\n\n    A paragraph\n    wrapped by hand.\n\n    \b\n    kept\n    lines\n    "
    assert unwrap(text) == "First line.\n\nA paragraph wrapped by hand.\n\nkept\nlines"


def test_an_unknown_command_is_a_usage_error_with_a_suggestion(cli) -> None:
    result = cli(["trian"])
    assert result.exit_code == 2 and "Did you mean 'train'" in result.stderr


# A value other than the default for every option of train-classifier.
CLASSIFIER_VALUES = {
    "--out": ["runs/other"], "--from": ["runs/lm"], "--unfreeze": ["3"], "--discriminative-lr": ["2.6"],
    "--label-column": ["y"], "--text-column": ["x"], "--max-tokens": ["7"], "--class-weights": [],
    "--teacher": ["runs/big"], "--teacher-weight": ["0.5"],
    "--val": ["val.tsv"], "--val-fraction": ["0.3"], "--level": ["word"], "--vocab-size": ["300"],
    "--min-frequency": ["2"], "--max-vocab": ["50"], "--lowercase": [], "--layers": ["1"],
    "--hidden": ["8"], "--embed": ["4"], "--dropout": ["0.1"], "--embed-dropout": ["0.1"],
    "--locked-dropout": [], "--weight-drop": ["0.1"], "--batch-size": ["3"], "--lr": ["0.1"],
    "--optimizer": ["sgd"], "--weight-decay": ["0.1"], "--schedule": ["cosine"], "--warmup": ["2"],
    "--clip": ["1"], "--ema": ["0.9"], "--epochs": ["2"], "--max-steps": ["5"], "--max-time": ["1"],
    "--eval-every": ["3"], "--patience": ["2"], "--keep-last": ["5"], "--resume": [], "--overwrite": [],
    "--random-state": ["1"],
    "--device": ["cpu"], "--precision": ["fp32"], "--threads": ["1"],
}  # fmt: skip


def test_every_train_classifier_option_reaches_the_classifier(cli, monkeypatch) -> None:
    """Each option, changed alone, changes what the classifier's training is given: none is ignored."""
    from lstmtext.cli import train_classifier

    calls: list[tuple[object, ...]] = []

    def record(*args: object, **options: object) -> None:
        calls.append((*args, *sorted(options.items())))

    monkeypatch.setattr(train_classifier, "train_classifier_command", record)
    shown = {opt for opt in shown_options("train-classifier") if opt.startswith("--") and opt != "--help"}
    assert shown == set(CLASSIFIER_VALUES)
    assert cli(["train-classifier", "data.tsv"]).exit_code == 0
    default = calls.pop()
    for option, value in CLASSIFIER_VALUES.items():
        assert cli(["train-classifier", "data.tsv", option, *value]).exit_code == 0, option
        assert calls.pop() != default, f"{option} changes nothing"
