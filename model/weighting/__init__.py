"""Task-weighting strategies, one file each; ``make_weighting`` looks one up by name.

To add a strategy: write ``model/weighting/<name>.py`` with a :class:`~.base.Weighting` subclass
and add it to :data:`STRATEGIES`. The training loop never changes.
"""
from __future__ import annotations

from .base import Weighting
from .dwa import DWA
from .static import Static
from .uncertainty import Uncertainty

STRATEGIES = {cls.name: cls for cls in (Static, Uncertainty, DWA)}


def make_weighting(name: str, tasks, **options) -> Weighting:
    """Build a strategy; ``options`` are its keyword arguments (e.g. ``alpha`` for static)."""
    if name not in STRATEGIES:
        raise ValueError(f"weighting must be one of {sorted(STRATEGIES)}, got {name!r}")
    return STRATEGIES[name](tasks, **options)
