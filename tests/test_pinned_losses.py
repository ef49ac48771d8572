"""Fixed-seed runs of both tasks give the losses pinned here: a change to the training loop that
changes results fails this test. The language-model figures were pinned before the loop served
both tasks and still hold; the classifier's were pinned when its options came to mean what the
language model's mean (Adam is Adam, one cosine curve, an epoch's order from its seed).

The tolerance admits the last bits fp32 kernels differ by between CPUs; a changed schedule,
optimizer or batch order moves these losses by 1e-3 or more.
"""

from pathlib import Path

import pytest

from lstmtext.classifier.api import train_classifier
from lstmtext.config import TokenizerConfig, TrainConfig
from lstmtext.lm.api import ModelShape, train_language_model
from tests.conftest import TINY_TEXT

SHAPE = ModelShape(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.1)
TOLERANCE = 2e-4

POSITIVE = ["a fine warm film", "great acting and a moving story", "i loved it", "wonderful and funny"]
NEGATIVE = ["a dull cold film", "bad acting and a boring story", "i hated it", "awful and slow"]
POSITIVE += ["a delight from start to end", "superb cast", "truly good", "best of the year"]
NEGATIVE += ["a mess from start to end", "weak cast", "truly bad", "worst of the year"]


def config(**values) -> TrainConfig:
    fixed = dict(batch_size=4, max_steps=12, eval_every=4, random_state=3, threads=1, precision="fp32")
    return TrainConfig(**(fixed | values))


def eval_losses(history: list[dict]) -> list[float]:
    return [record["loss"] for record in history if record["kind"] == "eval"]


@pytest.mark.parametrize(
    ("optimizer", "schedule", "lr", "losses", "best"),
    [
        ("adam", "plateau", 3e-3, [2.7600393295, 2.9309802055, 2.7829422951], 2.9098277453),
        ("sgd", "cosine", 0.5, [2.7637808323, 2.9325504303, 2.7942304612], 2.9185454484),
        ("adamw", "cosine", 3e-3, [2.7601354122, 2.9311189651, 2.7864186764], 2.9141321471),
    ],
)
def test_language_model_losses_are_pinned(tmp_path: Path, optimizer, schedule, lr, losses, best) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT, encoding="utf-8")
    train = config(seq_len=16, optimizer=optimizer, lr_schedule=schedule, lr=lr)
    result = train_language_model([str(corpus)], TokenizerConfig("char"), SHAPE, train, tmp_path / "run")
    assert eval_losses(result.history) == pytest.approx(losses, rel=TOLERANCE)
    assert result.best_val_loss == pytest.approx(best, rel=TOLERANCE)


@pytest.mark.parametrize(
    ("optimizer", "schedule", "lr", "losses", "best"),
    [
        ("adam", "constant", 3e-3, [0.7022639513, 0.6865181327, 0.6804993153], 0.6916930676),
        ("sgd", "constant", 0.05, [0.6872059703, 0.6902667284, 0.6851039529], 0.6936993003),
    ],
)
def test_classifier_losses_are_pinned(tmp_path: Path, optimizer, schedule, lr, losses, best) -> None:
    data = tmp_path / "s.tsv"
    rows = [f"positive\t{t}\n" for t in POSITIVE * 3] + [f"negative\t{t}\n" for t in NEGATIVE * 3]
    data.write_text("".join(rows), encoding="utf-8")
    train = config(val_fraction=0.25, optimizer=optimizer, lr_schedule=schedule, lr=lr)
    result = train_classifier([str(data)], TokenizerConfig("char"), SHAPE, train, tmp_path / "run")
    assert eval_losses(result.history) == pytest.approx(losses, rel=TOLERANCE)
    assert result.best_val_loss == pytest.approx(best, rel=TOLERANCE)
