"""The training loop, the task protocol it drives, optimisers and schedules, the weight EMA."""
