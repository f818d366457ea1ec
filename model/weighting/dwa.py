"""Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019).

w_t(e) = K exp(r_t(e-1) / T) / sum_k exp(r_k(e-1) / T), with r_t(e-1) = L_t(e-1) / L_t(e-2) the
ratio of the last two epoch-mean training losses, K tasks and temperature T (2 in the paper). The
first two epochs use weight 1 for every task.
"""
from __future__ import annotations

import numpy as np

from .base import Weighting


class DWA(Weighting):
    name = "dwa"

    def __init__(self, tasks, *, temperature: float = 2.0):
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"dwa temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.history: list[dict] = []

    def end_epoch(self, train_losses: dict) -> None:
        self.history = (self.history + [{t: float(train_losses[t]) for t in self.tasks}])[-2:]
        if len(self.history) < 2:
            return
        prev, last = self.history
        ratios = np.array([last[t] / max(prev[t], 1e-12) for t in self.tasks])
        e = np.exp((ratios - ratios.max()) / self.temperature)  # shift for numerical safety
        for t, w in zip(self.tasks, len(self.tasks) * e / e.sum()):
            self.w[t].assign(float(w))

    def get_state(self) -> dict:
        return {"w": self.weights(), "history": [dict(h) for h in self.history]}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.history = [dict(h) for h in state["history"]]
