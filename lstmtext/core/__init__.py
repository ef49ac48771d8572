"""The LSTM itself: the model and its heads, the gate-by-gate cell, the two-level softmax,
regularisation, the fast inference step, inspection of gates."""
