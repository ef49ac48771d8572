"""The scripts the Makefile builds the shipped models from: their data, the distillation data,
the GPU teacher's recipe and its answers. Measurement lives in benchmarks/."""
