"""Performance measurements, each a ratio against a baseline run side by side (never a timed test).

1. Ray overhead and 6. concurrency: ``benchmarks.sweep`` (with ``benchmarks.plain_loop``)
2. feature cache: ``benchmarks.feature_cache``
3. decoding: ``benchmarks.decoding``
4. training throughput vs the machine's matmul peak: ``benchmarks.throughput``
5. search efficiency of the samplers: ``benchmarks.search``
7. the clinical-efficacy labeler's speed: ``benchmarks.labeler``
8. the weighting methods' step time and memory against static weights: ``benchmarks.weighting``

``python -m benchmarks`` runs them all (see ``benchmarks/__main__.py``). Two GPU-only scripts run on
a GPU node by hand: ``benchmarks/gpu_check.sh`` and ``python -m benchmarks.gpu``.
"""
