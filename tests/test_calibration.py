"""Temperature scaling, the expected calibration error, the abstain band, and old checkpoints."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lstmtext.classifier.calibrate import calibrate
from lstmtext.classifier.calibration import (
    UNCERTAIN,
    fit_temperature,
    nll,
    reliability,
    softmax,
)
from lstmtext.classifier.predict import Predictor
from lstmtext.pretrained import PRETRAINED, SENTIMENT
from lstmtext.runs.checkpoint import read_config

from .conftest import TINY_CLASSIFIER_ARGS

EMBEDDED = PRETRAINED / SENTIMENT


@pytest.fixture(scope="module")
def noisy(tiny_reviews: Path) -> Path:
    """The tiny reviews with every fifth label flipped: errors to fit a temperature on
    (on data a model gets all right, there is none to fit)."""
    rows = [line.split("\t", 1) for line in tiny_reviews.read_text(encoding="utf-8").splitlines()]
    flip = {"positive": "negative", "negative": "positive"}
    path = tiny_reviews.parent / "noisy.tsv"
    path.write_text(
        "".join(f"{flip[label] if i % 5 == 0 else label}\t{text}\n" for i, (label, text) in enumerate(rows)),
        encoding="utf-8",
    )
    return path


def overconfident(n: int = 20000, temperature: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits `temperature` times too large for the labels they were drawn from."""
    rng = np.random.default_rng(seed)
    honest = rng.normal(0, 2, size=(n, 3))
    targets = np.array([rng.choice(3, p=p) for p in softmax(honest)])
    return honest * temperature, targets


def test_the_fitted_temperature_undoes_a_known_overconfidence() -> None:
    logits, targets = overconfident()
    assert fit_temperature(logits, logits.argmax(axis=1)) == 1.0  # no error to fit on: T stays 1
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(3.0, rel=0.05)
    assert nll(logits, targets, temperature) < nll(logits, targets)
    before = reliability(softmax(logits), targets).ece
    after = reliability(softmax(logits, temperature), targets).ece
    assert after < before / 3


def test_ece_and_reliability_bins_by_hand() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.5, 0.5]])
    targets = np.array([0, 1, 1, 1, 1])
    result = reliability(probabilities, targets, bins=10)
    # confidences 0.9, 0.8, 0.6, 0.7, 0.5 (bins are (low, high]: 0.5 falls in (0.4, 0.5]);
    # correct: yes, no, yes, yes, no (a tie goes to the first class)
    by_bin = {round(b.high, 1): (b.count, b.confidence, b.accuracy) for b in result.bins if b.count}
    assert by_bin == {
        0.5: (1, 0.5, 0.0),
        0.6: (1, 0.6, 1.0),
        0.7: (1, 0.7, 1.0),
        0.8: (1, 0.8, 0.0),
        0.9: (1, 0.9, 1.0),
    }
    expected = (0.5 + 0.4 + 0.3 + 0.8 + 0.1) / 5
    assert result.ece == pytest.approx(expected)
    assert len(reliability(probabilities, targets).bins) == 15
    assert math.isnan(reliability(np.zeros((0, 2)), np.zeros(0, dtype=int)).ece)


def test_training_fits_and_stores_a_temperature(
    cli, noisy: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = cli(["train", "--task", "classify", str(noisy), "--out", str(out), *TINY_CLASSIFIER_ARGS])
    assert result.exit_code == 0, result.stderr
    stored = json.loads((out / "config.json").read_text())["temperature"]
    assert stored > 0 and stored != 1.0 and f"(temperature {stored:.3f})" in result.stderr
    assert Predictor.load(out).temperature == stored
    # The tiny classifier gets all its validation texts right: nothing to fit, T stays 1
    assert read_config(tiny_classifier).temperature == 1.0


def test_calibrate_writes_only_the_temperature_and_keeps_the_verdicts(
    tiny_classifier: Path,
    tiny_reviews: Path,
    noisy: Path,
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_classifier, model)
    before = read_config(model)
    texts = [line.split("\t")[1] for line in tiny_reviews.read_text().splitlines()]
    labels_before = [p.label for p in Predictor.load(model).predict(texts)]
    result = calibrate(model, [noisy], max_per_file=50)
    assert result.count == 50 and result.errors > 0 and result.nll_after < result.nll_before
    after = read_config(model)
    assert after.temperature == pytest.approx(result.temperature)
    assert after.model == before.model and after.labels == before.labels and after.train == before.train
    assert [p.label for p in Predictor.load(model).predict(texts)] == labels_before
    assert not list(model.glob(".*.tmp"))  # written atomically: no temp file left behind


def test_an_old_checkpoint_without_a_temperature_classifies_as_before(cli, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(EMBEDDED, old)
    config = json.loads((old / "config.json").read_text())
    config.pop("temperature", None)  # as every checkpoint before temperatures was written
    (old / "config.json").write_text(json.dumps(config))
    predictor = Predictor.load(old, device="cpu", precision="fp32")
    assert predictor.temperature == 1.0
    texts = ["A joy from start to finish.", "Dull."]
    expected = softmax(predictor.logits(texts))
    np.testing.assert_allclose(predictor.probabilities(texts), expected, rtol=1e-5, atol=1e-6)
    review = tmp_path / "r.txt"
    review.write_text(texts[0], encoding="utf-8")
    result = cli(["classify", "-m", str(old), str(review), "--json", "--precision", "fp32"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["probability"] == pytest.approx(float(expected[0].max()), abs=1e-5)


def test_a_bad_temperature_in_config_json_is_one_line(cli, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(EMBEDDED, model)
    config = json.loads((model / "config.json").read_text())
    config["temperature"] = -1
    (model / "config.json").write_text(json.dumps(config))
    review = tmp_path / "r.txt"
    review.write_text("Fine.", encoding="utf-8")
    result = cli(["classify", "-m", str(model), str(review)])
    assert result.exit_code == 1 and "temperature must be a positive number" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_abstain_band_in_the_table_and_the_json(cli, tmp_path: Path) -> None:
    review = tmp_path / "r.txt"
    review.write_text("Great.", encoding="utf-8")
    classify = ["classify", str(review), "--precision", "fp32"]
    plain = json.loads(cli([*classify, "--json"]).stdout)
    assert "most_probable" not in plain and plain["probability"] < 1.0
    above = f"{(plain['probability'] + 1) / 2:.4f}"
    record = json.loads(cli([*classify, "--json", "--min-confidence", above]).stdout)
    assert record["label"] == UNCERTAIN and record["most_probable"] == plain["label"]
    assert record["probabilities"] == plain["probabilities"]
    table = cli([*classify, "--min-confidence", above])
    assert table.exit_code == 0 and f"{UNCERTAIN} ({plain['label']})" in table.stdout
    below = f"{plain['probability'] / 2:.4f}"
    assert json.loads(cli([*classify, "--json", "--min-confidence", below]).stdout)["label"] == plain["label"]
    explained = cli([*classify, "--explain", "--json", "--steps", "4", "--min-confidence", above])
    assert json.loads(explained.stdout)["label"] == UNCERTAIN
    assert cli([*classify, "--min-confidence", "1.5"]).exit_code == 2


def test_evaluate_reports_ece_a_reliability_table_and_a_diagram(
    cli,
    tiny_classifier: Path,
    tiny_reviews: Path,
    tiny_lm: Path,
    tmp_path: Path,
) -> None:
    result = cli(["evaluate", "-m", str(tiny_classifier), str(tiny_reviews)])
    assert result.exit_code == 0, result.stderr
    assert "expected calibration error" in result.stdout and "mean confidence" in result.stdout
    as_json = json.loads(cli(["evaluate", "-m", str(tiny_classifier), str(tiny_reviews), "--json"]).stdout)
    assert 0 <= as_json["ece"] <= 1 and len(as_json["reliability"]) == 15
    png = tmp_path / "reliability.png"
    result = cli(["evaluate", "-m", str(tiny_classifier), str(tiny_reviews), "--png", str(png)])
    pytest.importorskip("matplotlib")
    assert result.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = cli(["evaluate", "-m", str(tiny_lm), str(tiny_reviews), "--png", str(png)])
    assert result.exit_code == 2 and "language model" in result.stderr


def test_calibrate_command(
    cli, tiny_classifier: Path, tiny_reviews: Path, noisy: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_classifier, model)
    result = cli(["calibrate", "-m", str(model), str(noisy), "--max-per-file", "40"])
    assert result.exit_code == 0, result.stderr
    assert "temperature" in result.stdout and "on 40 texts" in result.stdout
    assert f"{read_config(model).temperature:.4f}" in result.stdout and read_config(model).temperature != 1.0
    fitted = read_config(model).temperature
    result = cli(["calibrate", "-m", str(model), str(tiny_reviews)])  # all right: nothing to fit
    assert result.exit_code == 1 and "stored temperature is kept" in result.stderr
    assert read_config(model).temperature == fitted


def test_build_embeds_a_classifier_with_a_temperature_fitted_on_held_out_data(
    tiny_classifier: Path,
    noisy: Path,
    tmp_path: Path,
) -> None:
    from lstmtext.pretrained.build import main

    out = tmp_path / "embedded"
    assert main([str(tiny_classifier), str(out), "--calibrate", str(noisy), "--max-per-file", "30"]) == 0
    temperature = read_config(out).temperature
    assert temperature != read_config(tiny_classifier).temperature  # refitted, on the fp16 weights
    assert Predictor.load(out).temperature == temperature


def test_the_reliability_diagram_without_matplotlib_is_one_line(
    cli,
    tiny_classifier: Path,
    tiny_reviews: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    result = cli(
        ["evaluate", "-m", str(tiny_classifier), str(tiny_reviews), "--png", str(tmp_path / "r.png")]
    )
    assert result.exit_code == 1 and "--png needs matplotlib" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "r.png").exists()
