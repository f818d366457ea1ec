"""Performance measurements, each a ratio against a baseline run side by side (never a timed test).

1. Ray overhead and 6. concurrency: ``benchmarks.sweep`` (with ``benchmarks.plain_loop``)
2. feature cache: ``benchmarks.feature_cache``
3. decoding: ``benchmarks.decoding``
4. training throughput vs the machine's matmul peak: ``benchmarks.throughput``
5. search efficiency of the samplers: ``benchmarks.search``

``python -m benchmarks`` runs them all (see ``benchmarks/__main__.py``).
"""
