"""Models shipped inside the package: one folder per checkpoint."""
