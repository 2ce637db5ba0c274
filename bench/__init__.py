"""Benchmarks and soaks of the local stack."""
