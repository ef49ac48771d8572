"""Sample from a language model exported by `lstmtext export --format onnx`, without lstmtext.

Needs onnxruntime, numpy and tokenizers:  python sample_onnx.py exported/ "ROMEO:" 300
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

folder, seed, length = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
info = json.loads((folder / "export.json").read_text())
session = onnxruntime.InferenceSession(str(folder / info["file"]))
tokenizer = Tokenizer.from_file(str(folder / info["tokenizer"]["file"]))
layers, _, hidden_size = info["state"]["shape"]
hidden = cell = np.zeros((layers, 1, hidden_size), dtype=np.float32)  # state (L, B=1, H)
ids = np.array([tokenizer.encode(seed, add_special_tokens=False).ids], dtype=np.int64)  # (1, T)
rng, sampled = np.random.default_rng(0), []
for _ in range(length):
    logits, hidden, cell = session.run(None, {"ids": ids, "hidden": hidden, "cell": cell})
    scaled = logits[0, -1] / 0.8  # temperature 0.8 on the last position's logits (V,)
    probs = np.exp(scaled - scaled.max())
    next_id = int(rng.choice(len(probs), p=probs / probs.sum()))
    sampled.append(next_id)
    ids = np.array([[next_id]], dtype=np.int64)  # the state carries everything before it
print(seed + tokenizer.decode(sampled))
