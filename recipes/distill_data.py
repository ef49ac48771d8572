"""The sentiment student's data: the teacher's answers on every text at hand, and a labelled set
that adds the language model's unlabelled texts with the teacher's verdict as their label.

    python -m recipes.distill_data answer runs/teacher [--data DATA] [--answers recipes/teacher]
    python -m recipes.distill_data write [--data DATA] [--answers recipes/teacher] [--out runs/distill]

DATA: the folder of `python -m recipes.sentiment_data` (runs/sentiment-data by default).

`answer` (on a GPU, where the teacher runs) stores the teacher's probability of `positive` for
each row of `DATA/train.tsv` and each line of `DATA/lm.txt` as float16 arrays, with the sha256
of the texts they answer: about 0.7 MB, committed, so the student can be remade on a CPU.
`write` turns them into `OUT/answers.jsonl` (for `train-classifier --teacher`) and
`OUT/train.tsv`: the rows of `DATA/train.tsv`, then each `lm.txt` line whose text is not among
them, labelled by the teacher.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LABELS = ("negative", "positive")
PARTS = ("train", "lm")


def texts_of(data: Path, part: str) -> list[str]:
    if part == "train":
        lines = (data / "train.tsv").read_text(encoding="utf-8").split("\n")
        return [line.split("\t", 1)[1] for line in lines if line]
    return [line for line in (data / "lm.txt").read_text(encoding="utf-8").split("\n") if line]


def digest(texts: Sequence[str]) -> str:
    hasher = hashlib.sha256()
    for text in texts:
        hasher.update(text.encode("utf-8") + b"\n")
    return hasher.hexdigest()


def answer(teacher: Path, data: Path, answers: Path, device: str) -> None:
    from lstmtext.classifier.distill import teacher_probabilities

    answers.mkdir(parents=True, exist_ok=True)
    texts = {part: texts_of(data, part) for part in PARTS}
    # One pass of the teacher over both parts: it loads once, and a text in both is read once.
    every = [text for part in PARTS for text in texts[part]]
    positive = teacher_probabilities(teacher, every, LABELS, device=device, precision="auto")[:, 1]
    digests = {}
    start = 0
    for part in PARTS:
        end = start + len(texts[part])
        np.save(answers / f"{part}.npy", positive[start:end].astype(np.float16))
        digests[part] = {"texts": len(texts[part]), "sha256": digest(texts[part])}
        start = end
    (answers / "texts.json").write_text(json.dumps(digests, indent=1) + "\n", encoding="utf-8")


def write(data: Path, answers: Path, out: Path) -> dict[str, int]:
    from lstmtext.classifier.distill import write_answers

    expected = json.loads((answers / "texts.json").read_text(encoding="utf-8"))
    texts, positive = {}, {}
    for part in PARTS:
        texts[part] = texts_of(data, part)
        if digest(texts[part]) != expected[part]["sha256"]:
            raise SystemExit(f"{data}: its {part} texts are not those the answers in {answers} were made for")
        positive[part] = np.load(answers / f"{part}.npy").astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    all_texts = texts["train"] + texts["lm"]
    p = np.concatenate([positive["train"], positive["lm"]])
    write_answers(out / "answers.jsonl", all_texts, LABELS, np.stack([1 - p, p], axis=1))
    labelled = set(texts["train"])
    train_lines = (data / "train.tsv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    added = 0
    for text, q in zip(texts["lm"], positive["lm"], strict=True):
        if text not in labelled and "\t" not in text and text.strip():  # repeats stay, as in train.tsv
            train_lines.append(f"{LABELS[int(q > 0.5)]}\t{text}")
            added += 1
    (out / "train.tsv").write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    return {"labelled": len(texts["train"]), "teacher_labelled": added}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.distill_data", description=__doc__)
    parser.add_argument("command", choices=("answer", "write"))
    parser.add_argument("teacher", nargs="?", type=Path, help="answer: the teacher classifier")
    parser.add_argument("--data", type=Path, default=Path("runs/sentiment-data"))
    parser.add_argument("--answers", type=Path, default=Path("recipes/teacher"))
    parser.add_argument("--out", type=Path, default=Path("runs/distill"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.command == "answer":
        if args.teacher is None:
            parser.error("answer needs the teacher classifier's folder")
        answer(args.teacher, args.data, args.answers, args.device)
    else:
        print(json.dumps(write(args.data, args.answers, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
