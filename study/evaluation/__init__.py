"""The evaluation layer: every metric a trial reports (:mod:`.metrics`; names in :mod:`.names`),
the text metrics' reference implementations (:mod:`.text`, :mod:`.bertscore`), the clinical
findings labeler (:mod:`.labeler`) and the learned scorers (:mod:`.scorers`). No Ray, no
TensorFlow; ``python -m study.evaluate`` scores any system's reports with it.
"""
