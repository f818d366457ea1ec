"""A model bundle: one chosen configuration of a study, taken out of it to predict on new studies.

:mod:`~study.bundle.choose` picks the configuration and the seed (no TensorFlow),
:mod:`~study.bundle.export` writes the bundle from a finished study, :mod:`~study.bundle.card`
its model card, and :mod:`~study.bundle.predictor` loads it and predicts, from a cohort directory
or from images plus a table of clinical fields, with :mod:`~study.bundle.images` encoding raw
images. Nothing here imports Ray: a bundle is used without the sweep.
"""
