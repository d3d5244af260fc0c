"""Benchmarks of pdl: ``compare.py`` (side by side with its peers) and ``quick.py``."""
