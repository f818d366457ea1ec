"""The nodes of the Ray cluster a sweep runs on: who is up, who joined and who ended while it ran."""
from __future__ import annotations

import threading
import time

import ray

from study.spec.resources import ClusterShape, grows_elsewhere


def nodes() -> dict:
    """The cluster's nodes as Ray knows them now: id -> address, CPU, GPU, alive (a dead node's
    CPU and GPU read 0)."""
    return {n["NodeID"]: {"address": n["NodeManagerAddress"], "alive": bool(n["Alive"]),
                          "CPU": n["Resources"].get("CPU", 0.0), "GPU": n["Resources"].get("GPU", 0.0)}
            for n in ray.nodes()}


class NodeWatch:
    """Every node seen while a sweep runs, with the resources it had while alive (Ray forgets a
    dead node's resources). Used as ``with NodeWatch(shape) as watch:``, it looks every
    ``interval_s`` seconds from a background thread (one GCS call each time) and announces nodes
    joining and ending."""

    def __init__(self, shape: ClusterShape | None, *, interval_s: float = 2.0, announce=print):
        self.shape, self.announce, self.start = shape, announce, time.time()
        self.seen: dict = {}
        self.update()
        self.initial = set(self.seen)
        self._interval_s, self._stop = interval_s, threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)

    def __enter__(self) -> "NodeWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.update()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.update()
            except Exception:  # the cluster is going away; the last update happens in __exit__
                pass

    def update(self) -> None:
        now = round(time.time() - self.start, 1)
        for node_id, n in nodes().items():
            known = self.seen.get(node_id)
            if known is None:
                self.seen[node_id] = known = {**n, "type": self._type(n), "seen_at_s": now}
                if hasattr(self, "initial") and n["alive"]:
                    self.announce(f"[{now:.0f} s] node {node_id} joined: {self._name(known)}")
            elif n["alive"]:
                known.update(n, type=known["type"] or self._type(n))
            elif known["alive"]:
                known.update(alive=False, ended_at_s=now)
                self.announce(f"[{now:.0f} s] node {node_id} ended: {self._name(known)}")

    def record(self) -> dict:
        """For study.json: nodes that joined during the sweep and nodes that ended during it."""
        def row(node_id, n):
            return {"node_id": node_id, **{k: n.get(k) for k in ("type", "CPU", "GPU", "seen_at_s", "ended_at_s")
                                           if n.get(k) is not None}}
        return {"nodes_launched": [row(i, n) for i, n in self.seen.items() if i not in self.initial],
                "nodes_ended": [row(i, n) for i, n in self.seen.items() if "ended_at_s" in n]}

    def _type(self, n: dict) -> str | None:
        return self.shape.type_of(n) if self.shape and n["alive"] else None

    def _name(self, n: dict) -> str:
        return f"{n['type'] or 'node'} ({n['CPU']:g} CPU, {n['GPU']:g} GPU)"


def off_this_machine(shape: ClusterShape | None, here: str | None) -> str | None:
    """Why some trial may run on another machine than ``here`` (this machine's IP address, once
    connected: None skips looking at the nodes up now); None if every node is, and every node the
    autoscaler may add will be, on this machine."""
    away = sorted({n["address"] for n in nodes().values() if n["alive"] and n["address"] != here}) if here else []
    if away:
        return f"it has nodes at {', '.join(away)}"
    return grows_elsewhere(shape)
