"""The specification layer: what a study is, decided and checked before anything runs.

Flags (:mod:`.flags`), search spaces (:mod:`.space`, :mod:`.space_file`), trial settings
(:mod:`.settings`), what one trial is asked to do (:mod:`.request`), resources and the cluster's
shape (:mod:`.resources`) and the frozen plan of a whole study (:mod:`.plan`). Imports neither Ray
nor TensorFlow (an import-linter contract in ``pyproject.toml`` enforces it).
"""
