"""The errors a user can meet. Each carries a one-line message; the CLI prints it and exits 1."""

from __future__ import annotations


class LstmTextError(Exception):
    """Base class: anything raised with this type is shown as one line, without a traceback."""

    exit_code = 1


class CorpusError(LstmTextError):
    """A corpus file is missing, empty, binary, not decodable, or too short to learn from."""


class DataError(LstmTextError):
    """A labelled data file is malformed (missing column, unknown label, ...)."""


class TokenizerError(LstmTextError):
    """A tokenizer cannot be trained or loaded."""


class CheckpointError(LstmTextError):
    """A checkpoint directory is missing, truncated, corrupt, foreign or of the wrong kind."""


class ConfigError(LstmTextError):
    """A configuration value is out of range or inconsistent."""

    exit_code = 2


class TrainingInterrupted(LstmTextError):
    """Training stopped by a signal after saving a checkpoint."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number


class TrainingDiverged(LstmTextError):
    """The loss stayed NaN or infinite after rolling back to the last checkpoint."""


class OutputLocked(LstmTextError):
    """Another training run holds the output directory."""


class Interrupted(LstmTextError):
    """Ctrl-C (or SIGTERM) in a command, carried past typer, which would turn it into a silent exit 130."""

    def __init__(self, message: str = "interrupted", signal_number: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signal_number  # 130 for SIGINT, 143 for SIGTERM
