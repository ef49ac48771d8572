"""Knowledge distillation: a classifier's calibrated probabilities as soft targets for another.

A large classifier (trained on a GPU, too slow or too big to ship) labels the training texts
once before training; the smaller model then learns from the mix

    loss = (1 - w) * CE(logits, label) + w * CE(logits, teacher's probabilities)

(Hinton et al. 2015, at temperature 1 on the teacher's calibrated probabilities). The teacher's
tokenizer and shape are its own: only its answers per text are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lstmtext.errors import ConfigError


def teacher_probabilities(
    teacher: Path | str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    device: str,
    precision: str,
) -> np.ndarray:
    """(N, len(labels)) float32: the teacher's calibrated probabilities of `texts`, columns in
    the order of `labels`. Repeated texts (oversampled sources) are read once."""
    from lstmtext.classify import Predictor

    predictor = Predictor.load(teacher, device=device, precision=precision)
    if sorted(predictor.labels) != sorted(labels):
        raise ConfigError(
            f"the teacher {teacher} knows the classes {', '.join(predictor.labels)}; "
            f"this data has {', '.join(labels)}"
        )
    unique = list(dict.fromkeys(texts))
    row_of = {text: i for i, text in enumerate(unique)}
    probabilities = predictor.probabilities(unique)
    columns = [list(predictor.labels).index(label) for label in labels]
    return probabilities[:, columns][[row_of[text] for text in texts]].astype(np.float32)


def distillation_loss(
    logits: Tensor, targets: Tensor, soft_targets: Tensor, teacher_weight: float, class_weight: Tensor | None
) -> Tensor:
    """(1 - w) * cross-entropy on the labels + w * cross-entropy on the teacher's probabilities."""
    logits = logits.float()
    hard = nn.functional.cross_entropy(logits, targets, weight=class_weight)
    soft = -(soft_targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
    return (1.0 - teacher_weight) * hard + teacher_weight * soft
