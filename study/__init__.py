"""The study: CLI, Ray Tune/Train glue, metrics, results store, analysis and plots.

Only ``study.tune`` (and the CLI that uses it) imports Ray; metrics, the results store, analysis
and plots read plain files and run in any process.
"""
