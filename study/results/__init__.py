"""The results layer: where an experiment's files live and what they hold.

* :mod:`.layout`: file names and column lists of the results contract (one place);
* :mod:`.files`: atomic writes (write-then-rename);
* :mod:`.tables`: the Parquet tables consolidated from the trial directories;
* :mod:`.remote`: experiments on object storage (``s3://``, ``gs://``, ``file://``);
* :mod:`.optuna_db`: the searcher's Optuna study beside the tables.

Nothing here imports Ray or TensorFlow.
"""
