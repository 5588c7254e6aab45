"""Benchmarks: measured on this machine, reported in bench/README.md, never asserted in tests."""
