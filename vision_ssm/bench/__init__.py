"""Benchmarks behind tools/benchmark_*.py: timing and memory helpers, and the suites."""
