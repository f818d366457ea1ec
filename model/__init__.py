"""The cross-modal multi-task network (paper section 3), its losses, task weighting, schedules,
training loop and decoding. Keras 3 on TensorFlow; never imports Ray."""
