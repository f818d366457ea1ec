"""The study: a Ray-distributed search over loss weighting and hyperparameters.

The commands are the modules at this level: ``study/run.py`` (a study), ``study.report``,
``study.evaluate``, ``study.dashboard`` and ``study.cluster``. The layers are the folders, each
importing only those below it (enforced by import-linter, see ``pyproject.toml``):

* ``sweep``: the only layer that imports Ray; carries out a plan;
* ``trial``: one trial without Ray (imports TensorFlow through ``model``);
* ``analysis``: fronts, configurations, methods, overfitting, recipes, plots, the report;
* ``evaluation``: metrics, the labeler, the learned scorers;
* ``results``: file layout, Parquet tables, remote storage, the Optuna database;
* ``spec``: flags, search spaces, settings, the trial request, the frozen plan.

Below them all: ``model`` (the network, Keras/TensorFlow) and ``data`` (cohorts, features).
"""
