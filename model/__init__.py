"""The cross-modal multi-task network (paper section 3), its losses, task weighting, schedules,
training loop and decoding. Keras 3 on TensorFlow; never imports Ray or ``study``.

One rule for TensorFlow against ``keras.ops``: the network's definition (``network.py``,
``layers.py``) uses ``keras.ops``, so it stays a plain, serialisable Keras model. Everything that
runs inside the distributed training step uses TensorFlow directly (``losses.py``, ``schedules.py``,
``weighting/``, ``train.py``, ``decoding.py``'s compiled step): it needs ``tf.distribute``'s replica
context (``all_reduce``), ``tf.function``, ``tf.numpy_function`` and ``tf.Variable`` state
that the strategies keep between steps.
"""
