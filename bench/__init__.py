"""Benchmarks of scaivault-operator: an in-memory Kubernetes API (``fakeapi``), the harness (``run``), and the
naive per-object polling baseline (``naive``). Not part of the product: nothing under ``operator/`` imports it."""
