"""Evaluating restoration models on prepared benchmarks, in the paper's table layout."""
