"""Calibrating a classifier checkpoint: fit its temperature on held-out labelled data and store
it in config.json, after training (`calibrate_run`) or later (`calibrate`, `lstmtext calibrate`).

    calibrate("runs/sentiment", ["val.tsv"])      # fits T and writes it into config.json

The maths (the fit, NLL, ECE) is `lstmtext.classifier.calibration`.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstmtext.classifier.calibration import (
    LOG_T_RANGE,
    CalibrationResult,
    fit_temperature,
    temperature_result,
)
from lstmtext.classifier.predict import Predictor
from lstmtext.classifier.task import ClassifierTask
from lstmtext.config import RunConfig
from lstmtext.core.model import Classifier
from lstmtext.data.labelled import DEFAULT_COLUMNS, Columns, LabelledData, read_labelled
from lstmtext.errors import DataError
from lstmtext.files import atomic_write_text
from lstmtext.runs import checkpoint as ckpt


def read_validation(
    sources: Sequence[str | Path],
    labels: Sequence[str],
    *,
    columns: Columns = DEFAULT_COLUMNS,
    max_per_file: int | None = None,
    seed: int = 0,
) -> LabelledData:
    """Labelled texts of each source; with `max_per_file`, a fixed random sample of each."""
    parts = []
    for source in sources:
        data = read_labelled([str(source)], columns=columns, known_labels=tuple(labels), min_classes=1)
        if max_per_file is not None and len(data) > max_per_file:
            rows = sorted(random.Random(seed).sample(range(len(data)), max_per_file))
            data = LabelledData(
                tuple(data.texts[i] for i in rows),
                tuple(data.labels[i] for i in rows),
                tuple(data.origins[i] for i in rows),
            )
        parts.append(data)
    return sum(parts[1:], parts[0])


# Fewer held-out texts than this cannot pin T down: one or two texts give the search's bound.
MIN_CALIBRATION_TEXTS = 20


def check_fit(result: CalibrationResult) -> None:
    """Refuse a temperature the data cannot support, before anything is written: the stored
    temperature is worth more than a fit on too few texts or on texts all classified right."""
    keep = "; the stored temperature is kept"
    if result.count < MIN_CALIBRATION_TEXTS:
        raise DataError(
            f"calibration needs at least {MIN_CALIBRATION_TEXTS} held-out texts, got {result.count}{keep}"
        )
    if result.errors == 0:
        raise DataError(
            f"the model gets all {result.count} texts right, which cannot tell how over-confident it is: "
            f"calibrate on held-out data with some mistakes{keep}"
        )


def at_search_limit(temperature: float) -> bool:
    """T at an end of the search: the data says the model is all noise (or all certainty)."""
    low, high = (math.exp(bound) for bound in LOG_T_RANGE)
    return not low * 1.01 < temperature < high / 1.01


def calibrate(
    checkpoint_dir: Path | str,
    val_files: Sequence[str | Path],
    *,
    columns: Columns = DEFAULT_COLUMNS,
    max_per_file: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> CalibrationResult:
    """Fit the temperature of a classifier checkpoint on labelled validation data and write
    it into the checkpoint's config.json (atomically; the weights are not touched).

    The validation data must not be the data the model is tested on, nor what it trained on:
    on its training data a model looks better calibrated than it is, and T comes out too small.
    Any temperature already stored is ignored: the fit starts from the raw logits.
    """
    directory = Path(checkpoint_dir)
    predictor = Predictor.load(directory, device=device, precision="fp32")
    data = read_validation(val_files, predictor.labels, columns=columns, max_per_file=max_per_file, seed=seed)
    index = {label: i for i, label in enumerate(predictor.labels)}
    targets = np.asarray([index[label] for label in data.labels], dtype=np.int64)
    result = temperature_result(predictor.logits(data.texts), targets)
    check_fit(result)
    config = ckpt.read_config(directory)  # re-read: write back exactly what is there, plus T
    atomic_write_text(
        directory / ckpt.CONFIG, dataclasses.replace(config, temperature=result.temperature).to_json()
    )
    return result


def calibrate_run(task: ClassifierTask, run_config: RunConfig, out_dir: Path) -> float:
    """Fit the temperature of the best weights on the validation data; store it in config.json.

    The best weights are read back from disk into a copy, so the trained model (the last
    weights) is left as it was."""
    assert task.val_targets is not None
    best = Classifier(run_config.model)
    ckpt.load_weights(best, out_dir / ckpt.WEIGHTS)
    temperature = fit_temperature(task.logits(best.to(task.device)), task.val_targets)
    calibrated = dataclasses.replace(run_config, temperature=temperature)
    atomic_write_text(out_dir / ckpt.CONFIG, calibrated.to_json())
    return temperature
