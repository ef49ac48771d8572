"""lstmtext: stacked-LSTM language models and sentiment classifiers for text."""

__version__ = "0.1.0"
