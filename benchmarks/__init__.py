"""Speed measured against reference implementations in the same run: ``python -m benchmarks.<name>``."""
