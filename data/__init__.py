"""Cohort building and everything before the model: no model code, no Ray.

Sources (``synthetic``, ``mimic``) both write a *cohort directory*: ``cohort.parquet`` with the
schema of :mod:`data.schema` plus the images it points to. :func:`data.dataset.prepare` turns a
cohort directory into model-ready arrays (cached image features, encoded tabular inputs, tokens).
"""
