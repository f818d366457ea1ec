"""Task-weighting strategies, one file each; ``make_weighting`` builds one by name.

To add a strategy: write ``model/weighting/<file>.py`` with a :class:`~.base.Weighting` (a loss
method) or :class:`~.base.GradientWeighting` (a gradient method) subclass, and add one line to
:data:`STRATEGIES`: its name, where it lives and the options it takes (a search space sets option
``o`` of strategy ``name`` as the setting ``<name>_<o>``, e.g. ``cagrad_c``). The training loop
never changes. This registry imports no TensorFlow, so the study's driver can check names and
options before any trial starts; a strategy's module is imported when it is built.
"""
from __future__ import annotations

import importlib

# name -> (module:class, options it takes)
STRATEGIES = {
    "static": ("static:Static", ("alpha", "beta", "gamma")),
    "uncertainty": ("uncertainty:Uncertainty", ()),
    "dwa": ("dwa:DWA", ("temperature",)),
    "gradnorm": ("gradnorm:GradNorm", ("alpha", "lr")),
    "pcgrad": ("pcgrad:PCGrad", ()),
    "cagrad": ("cagrad:CAGrad", ("c",)),
    "imtl": ("imtl:IMTL", ()),
    "nashmtl": ("nash_mtl:NashMTL", ()),
    "alignedmtl": ("aligned_mtl:AlignedMTL", ()),
    "famo": ("famo:FAMO", ("lr", "decay")),
    "dbmtl": ("db_mtl:DBMTL", ("beta", "beta_sigma")),
}


def strategy_class(name: str):
    if name not in STRATEGIES:
        raise ValueError(f"weighting must be one of {sorted(STRATEGIES)}, got {name!r}")
    module, cls = STRATEGIES[name][0].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def make_weighting(name: str, tasks, **options):
    """Build a strategy; ``options`` are its keyword arguments (e.g. ``alpha`` for static)."""
    cls = strategy_class(name)
    unknown = set(options) - set(STRATEGIES[name][1])
    if unknown:
        raise ValueError(f"weighting {name!r} takes options {list(STRATEGIES[name][1])}, got {sorted(unknown)}")
    return cls(tasks, **options)
