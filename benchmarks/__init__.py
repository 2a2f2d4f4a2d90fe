"""Benchmarks of hubkit, each measured against a named reference in the same run.

Every benchmark is a module run as ``python -m benchmarks.<topic>`` (``--quick`` for a size that
runs in about a minute). It prints progress on stderr/stdout and, as its last line, one JSON object
with at least ``benchmark``, ``reference``, ``ratio`` (our speed / the reference's speed, higher is
better) and ``goal``, plus the raw figures. ``python -m benchmarks`` runs them all.

Benchmarks never run in the test suite: they are slow and their figures depend on the machine.
"""
