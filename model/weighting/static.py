"""Fixed weights a, b, c for text, OC, ML: the paper's STL / MTL-EQ / MTL-TP settings
(Aksoy et al. 2024, section 3.1: L = a L_ITG + b L_OC + c L_ML)."""
from __future__ import annotations

from .base import Weighting


class Static(Weighting):
    name = "static"

    def __init__(self, tasks, *, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0):
        super().__init__(tasks)
        given = {"text": alpha, "oc": beta, "ml": gamma}
        for t in self.tasks:
            if given[t] < 0:
                raise ValueError(f"loss weight for task {t!r} must be >= 0, got {given[t]}")
            self.w[t].assign(float(given[t]))

    def monitor_weights(self) -> dict:
        return self.weights()
