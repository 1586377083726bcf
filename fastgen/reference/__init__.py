"""Plain-PyTorch twins of every fastgen op: the ground truth for tests and benchmarks."""
