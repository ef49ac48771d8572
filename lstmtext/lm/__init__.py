"""Language models: their task, the Python API, generation and sampling, dynamic evaluation, ensembles."""
