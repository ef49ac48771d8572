"""Export: the ONNX graph in onnxruntime and the torch.export program compute what PyTorch does.

The ONNX tests need onnx, onnxscript and onnxruntime (`pip install 'lstmtext[export]'`) and
are skipped without them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmtext.config import ModelConfig
from lstmtext.core.model import LanguageModel
from lstmtext.errors import ConfigError
from lstmtext.runs import checkpoint as ckpt
from lstmtext.runs.export import ExportOptions, export_model

from .conftest import random_checkpoint, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sample_onnx.py"
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs onnx, onnxscript and onnxruntime")
# Close, not equal: onnxruntime's LSTM kernel sums in another order than PyTorch's.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}
VOCAB = tiny_tokenizer().vocab_size  # the tiny char tokenizer random_checkpoint writes


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char LM with random weights: 2 layers, tied embedding and head, dropout (off in eval)."""
    config = ModelConfig(VOCAB, embedding_dim=16, hidden_size=16, num_layers=2, dropout=0.3, tie_weights=True)
    return random_checkpoint(tmp_path_factory.mktemp("lm"), config, seed=3)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ModelConfig(VOCAB, embedding_dim=8, hidden_size=12, num_layers=2, task="classify", num_classes=3)
    return random_checkpoint(
        tmp_path_factory.mktemp("classifier"), config, labels=("neg", "neu", "pos"), seed=4
    )


@pytest.fixture(scope="module")
def onnx_lm(lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_ONNX:
        pytest.skip("needs onnx, onnxscript and onnxruntime")
    return export_model(lm_dir, tmp_path_factory.mktemp("onnx_lm"), ExportOptions("onnx")).directory


def _chunks(vocab_size: int, batch: int) -> list[torch.Tensor]:
    """A prompt of 7 tokens, then single tokens: how sampling calls the step."""
    generator = torch.Generator().manual_seed(0)
    lengths = [7, 1, 1, 1, 3]
    return [torch.randint(3, vocab_size, (batch, t), generator=generator) for t in lengths]


def _torch_steps(model: LanguageModel, chunks: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    state = model.core.initial_state(chunks[0].shape[0])
    results = []
    with torch.no_grad():
        for ids in chunks:
            logits, state = model(ids, state)
            results.append((logits, *state))
    return results


@needs_onnx
def test_onnx_lm_step_matches_pytorch_with_state_carried(lm_dir: Path, onnx_lm: Path) -> None:
    import onnxruntime

    checkpoint = ckpt.load_checkpoint(lm_dir, task="lm")
    assert isinstance(checkpoint.model, LanguageModel)
    info = json.loads((onnx_lm / "export.json").read_text())
    assert info["task"] == "lm" and info["file"] == "model.onnx" and info["quantize"] is None
    assert info["state"]["shape"] == [2, "batch", 16]
    assert [spec["name"] for spec in info["inputs"]] == ["ids", "hidden", "cell"]
    assert info["tokenizer"]["level"] == "char"
    assert info["tokenizer"]["vocab_size"] == checkpoint.tokenizer.vocab_size
    assert (onnx_lm / "tokenizer.json").read_text() == checkpoint.tokenizer.to_str()

    session = onnxruntime.InferenceSession(str(onnx_lm / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # B and T are free: neither is the export's example
        chunks = _chunks(checkpoint.tokenizer.vocab_size, batch)
        hidden = cell = np.zeros((2, batch, 16), dtype=np.float32)
        for ids, expected in zip(chunks, _torch_steps(checkpoint.model, chunks), strict=True):
            # The state fed back is onnxruntime's own, so any drift would add up over the steps.
            logits, hidden, cell = session.run(None, {"ids": ids.numpy(), "hidden": hidden, "cell": cell})
            for got, want in zip((logits, hidden, cell), expected, strict=True):
                torch.testing.assert_close(torch.from_numpy(got), want, **TOLERANCE)


@pytest.fixture(scope="module")
def two_level_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char LM with a two-level softmax (lstmtext.core.softmax) over a shuffled frequency order."""
    torch.manual_seed(5)
    model = LanguageModel(
        ModelConfig(VOCAB, embedding_dim=16, hidden_size=16, tie_weights=True, softmax_cutoff=20)
    )
    model.set_output_prior(torch.randint(0, 100, (VOCAB,), generator=torch.Generator().manual_seed(6)))
    return random_checkpoint(tmp_path_factory.mktemp("two_level"), model)


@pytest.mark.parametrize("file_format", ["onnx", "pt2"])
def test_a_two_level_softmax_exports_its_log_probs(
    two_level_lm_dir: Path, tmp_path: Path, file_format: str
) -> None:
    if file_format == "onnx" and not HAS_ONNX:
        pytest.skip("needs onnx, onnxscript and onnxruntime")
    result = export_model(two_level_lm_dir, tmp_path / file_format, ExportOptions(file_format))
    model = ckpt.load_checkpoint(two_level_lm_dir).model
    assert isinstance(model, LanguageModel) and model.two_level is not None
    chunks = _chunks(model.config.vocab_size, 2)
    hidden, cell = (np.zeros((2, 2, 16), dtype=np.float32) for _ in range(2))
    if file_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])

        def run(ids: torch.Tensor, h: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
            return session.run(None, {"ids": ids.numpy(), "hidden": h, "cell": c})
    else:
        module = torch.export.load(result.model_path).module()

        def run(ids: torch.Tensor, h: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
            return [t.numpy() for t in module(ids, torch.from_numpy(h), torch.from_numpy(c))]

    with torch.no_grad():
        for ids, expected in zip(chunks, _torch_steps(model, chunks), strict=True):
            logits, hidden, cell = run(ids, hidden, cell)
            for got, want in zip((logits, hidden, cell), expected, strict=True):
                torch.testing.assert_close(torch.from_numpy(np.asarray(got)), want, **TOLERANCE)
            torch.testing.assert_close(torch.from_numpy(logits).exp().sum(-1), torch.ones(ids.shape))


def test_pt2_loads_with_torch_export_and_matches(lm_dir: Path, tmp_path: Path) -> None:
    result = export_model(lm_dir, tmp_path / "pt2", ExportOptions("pt2"))
    assert result.model_path == tmp_path / "pt2" / "model.pt2"
    assert json.loads((tmp_path / "pt2" / "export.json").read_text())["format"] == "pt2"
    step = torch.export.load(result.model_path).module()
    model = ckpt.load_checkpoint(lm_dir).model
    assert isinstance(model, LanguageModel)
    chunks = _chunks(model.config.vocab_size, 2)
    hidden, cell = model.core.initial_state(2)
    with torch.no_grad():
        for ids, expected in zip(chunks, _torch_steps(model, chunks), strict=True):
            logits, hidden, cell = step(ids, hidden, cell)
            for got, want in zip((logits, hidden, cell), expected, strict=True):
                torch.testing.assert_close(got, want, **TOLERANCE)


def _padded_batch(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (4, 9) right-padded with 0, lengths (4,): one full row, the others shorter."""
    lengths = torch.tensor([9, 4, 1, 6])
    ids = torch.randint(3, vocab_size, (4, 9), generator=torch.Generator().manual_seed(1))
    ids[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("file_format", ["onnx", "pt2"])
def test_classifier_export_matches(classifier_dir: Path, tmp_path: Path, file_format: str) -> None:
    if file_format == "onnx" and not HAS_ONNX:
        pytest.skip("needs onnx, onnxscript and onnxruntime")
    result = export_model(classifier_dir, tmp_path / "out", ExportOptions(file_format))
    assert result.info["labels"] == ["neg", "neu", "pos"] and "state" not in result.info
    assert [spec["name"] for spec in result.info["inputs"]] == ["ids", "lengths"]
    model = ckpt.load_checkpoint(classifier_dir, task="classify").model
    ids, lengths = _padded_batch(model.config.vocab_size)
    with torch.no_grad():
        expected = model(ids, lengths)
    if file_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"ids": ids.numpy(), "lengths": lengths.numpy()})
        got = torch.from_numpy(got)
    else:
        with torch.no_grad():
            got = torch.export.load(result.model_path).module()(ids, lengths)
    torch.testing.assert_close(got, expected, **TOLERANCE)


@needs_onnx
def test_int8_quantisation_stays_close(lm_dir: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    result = export_model(lm_dir, tmp_path / "int8", ExportOptions("onnx", quantize="int8"))
    assert result.info["quantize"] == "int8"
    operators = {node.op_type for node in onnx.load(result.model_path).graph.node}
    assert "DynamicQuantizeLSTM" in operators  # the LSTM weights are int8, not only the head's
    model = ckpt.load_checkpoint(lm_dir).model
    assert isinstance(model, LanguageModel)
    ids = _chunks(model.config.vocab_size, 2)[0]
    with torch.no_grad():
        expected, _ = model(ids)
    session = onnxruntime.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    zeros = np.zeros((2, 2, 16), dtype=np.float32)
    logits, _, _ = session.run(None, {"ids": ids.numpy(), "hidden": zeros, "cell": zeros})
    # int8 weights: close, not equal (benchmarks/export_speed.py measures the cost on real text).
    # The error depends on the CPU's int8 kernels (VNNI or not), so it is bounded relative to the logits.
    expected = expected.numpy()
    relative = np.linalg.norm(logits - expected) / np.linalg.norm(expected)
    # Measured 3.6 % on AMD Zen 3 (AVX2, no VNNI); a wrong quantisation is off by ~100 %.
    assert relative < 0.10, f"int8 logits off by {relative:.3%} of their norm"


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown export format 'torchscript'"):
        ExportOptions("torchscript")
    with pytest.raises(ConfigError, match="needs --format onnx"):
        ExportOptions("pt2", quantize="int8")
    with pytest.raises(ConfigError, match="unknown quantisation"):
        ExportOptions("onnx", quantize="int4")


def test_cli_export_and_its_errors(cli, lm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    file_format = "onnx" if HAS_ONNX else "pt2"
    result = cli(["export", "--model", str(lm_dir), "--format", file_format, str(out)])
    assert result.exit_code == 0, result.stderr
    # The path on stdout, one line on stderr: none of the exporters' chatter comes through.
    assert result.stdout == f"{out / ('model.' + file_format)}\n" and (out / "export.json").exists()
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("exported lm to ")

    result = cli(["export", "--model", str(lm_dir), "--format", "torchscript", str(out)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("lstmtext: error: unknown export format 'torchscript'")
    result = cli(["export", "--model", str(tmp_path / "nope"), str(out)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    result = cli(["export", "--model", str(lm_dir), "--format", "pt2", "--quantize", "int8", str(out)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


@needs_onnx
def test_readme_sampling_snippet_runs_without_lstmtext(onnx_lm: Path) -> None:
    """examples/sample_onnx.py is quoted whole in docs/export.md, and runs with lstmtext unimportable."""
    snippet = EXAMPLE.read_text(encoding="utf-8")
    assert snippet.strip() in (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    # `import lstmtext` anywhere in the snippet would fail: None in sys.modules blocks the import.
    runner = (
        "import runpy, sys; sys.modules['lstmtext'] = None; "
        f"sys.argv = ['sample_onnx.py', {str(onnx_lm)!r}, 'To be', '40']; "
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner], capture_output=True, text=True, timeout=60, cwd=onnx_lm
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("To be") and len(done.stdout) > len("To be") + 10
