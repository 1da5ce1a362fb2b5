"""asv benchmarks for sinkhorn_nb (``asv run --python=same``)."""
