"""Performance measurements: each reports a ratio against a baseline run side by side."""
