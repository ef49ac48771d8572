"""Classifiers: their task, the Python API, prediction, explanation, distillation, calibration."""
