"""What a run leaves on disk: checkpoints, the run directory, resume files, averaging, export."""
