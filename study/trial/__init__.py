"""One trial without Ray: settings -> model and training configs -> fit -> score -> records.

:func:`study.trial.runner.run_trial` is what the sweep layer calls in each trial process (or each
Ray Train worker); it imports TensorFlow, which the driver never does.
"""
