"""Benchmarks, oracle labels and studies: how every figure in docs/ was measured."""
