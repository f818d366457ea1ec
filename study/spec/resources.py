"""What a trial reserves and how many run at once, decided before Ray starts.

A study sizes its concurrency from the node types the autoscaler may launch (``cluster.yaml``:
each type's resources times its ``max_workers``), not from the nodes up at the moment: on a
cluster that starts with a GPU-less head and ``min_workers: 0`` GPU workers, the GPUs appear only
after trials ask for them. Without an autoscaler, the nodes up now decide.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .request import StudyContext

log = logging.getLogger(__name__)

# Where `ray up` leaves the autoscaler's configuration on the head node.
HEAD_NODE_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict      # what one node offers, e.g. {"CPU": 4.0, "GPU": 1.0}
    max_nodes: int       # the most nodes of this type at once (the head type: 1 + its max_workers)
    is_head: bool = False

    def holds(self, bundle: dict) -> int:
        """How many ``bundle``-sized requests one node of this type holds."""
        fits = [self.resources.get(k, 0.0) / v for k, v in bundle.items() if v > 0]
        return int(min(fits) + 1e-9) if fits else 0

    def describe(self) -> str:
        res = ", ".join(f"{k} {v:g}" for k, v in sorted(self.resources.items()))
        return f"{self.name} ({res}; up to {self.max_nodes})"


@dataclass(frozen=True)
class ClusterShape:
    """The node types a cluster's autoscaler may run, and its cap on worker nodes."""
    types: tuple[NodeType, ...]
    max_workers: float = math.inf   # non-head nodes across all types
    source: str = ""                # where this came from, for messages
    on_this_machine: bool = False   # every node it launches runs here (the fake provider)

    @classmethod
    def from_config(cls, config: dict, source: str = "") -> "ClusterShape":
        """From a Ray cluster configuration (the YAML given to ``ray up``)."""
        head = config.get("head_node_type")
        cap = config.get("max_workers", math.inf)
        types = []
        for name, spec in (config.get("available_node_types") or {}).items():
            resources = {k: float(v) for k, v in (spec.get("resources") or {}).items()}
            if not resources:
                raise ValueError(f"{source or 'cluster config'}: node type {name!r} declares no "
                                 f"resources; write out what one node offers, e.g. "
                                 f"resources: {{CPU: 4, GPU: 1}}")
            extra = int(min(spec.get("max_workers", 0 if name == head else cap), cap))
            types.append(NodeType(name, resources, extra + (name == head), name == head))
        if not types:
            raise ValueError(f"{source or 'cluster config'}: no available_node_types")
        provider = (config.get("provider") or {}).get("type")
        return cls(tuple(types), cap, source, on_this_machine=provider == "fake_multinode")

    def slots(self, bundle: dict) -> int:
        """How many ``bundle``-sized requests fit when the cluster is fully grown. Worker nodes
        beyond ``max_workers`` never start, so the types holding most are counted first."""
        total, budget = 0, self.max_workers
        for t in sorted(self.types, key=lambda t: t.holds(bundle), reverse=True):
            nodes = t.max_nodes if t.is_head else min(t.max_nodes, budget)
            total += t.holds(bundle) * int(nodes)
            budget -= 0 if t.is_head else nodes
        return total

    def can_grow(self) -> bool:
        return any(t.max_nodes > 0 for t in self.types if not t.is_head)

    def type_of(self, resources: dict) -> str | None:
        """The node type whose CPU and GPU counts are these (None if not exactly one)."""
        match = [t.name for t in self.types if all(float(resources.get(k, 0.0)) == t.resources.get(k, 0.0)
                                                   for k in ("CPU", "GPU"))]
        return match[0] if len(match) == 1 else None

    def describe(self) -> str:
        return "; ".join(t.describe() for t in self.types)


def running_autoscalers() -> list[tuple[str | None, Path]]:
    """``(GCS address, --autoscaling-config)`` of every autoscaler running on this machine, as
    ``ray start --head --autoscaling-config`` starts one: Ray's monitor process names both on its
    command line."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            parts = process.info["cmdline"] or []
        except psutil.Error:
            continue
        if any(part.endswith("autoscaler/_private/monitor.py") for part in parts):
            flags = dict(part[2:].split("=", 1) for part in parts if part.startswith("--") and "=" in part)
            if "autoscaling-config" in flags:
                found.append((flags.get("gcs-address"), Path(flags["autoscaling-config"])))
    return found


def running_autoscaler_config(address: str | None) -> Path | None:
    """The configuration file of the autoscaler running here for the cluster at ``address``
    (``auto``: the only one running)."""
    found = running_autoscalers()
    if address and address != "auto":  # by port: the monitor may name the node's IP, the user 127.0.0.1
        port = address.rsplit(":", 1)[-1]
        found = [(gcs, path) for gcs, path in found if gcs and gcs.rsplit(":", 1)[-1] == port]
    return found[0][1] if len(found) == 1 else None


def find_shape(path: str | None = None, *, address: str | None = None) -> ClusterShape | None:
    """The autoscaler's node types from ``path`` (``--cluster-config``), else, when joining a
    cluster (``address``), from the copy ``ray up`` leaves on the head node, or from the file an
    autoscaler running here was started with. None: no such file."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ValueError(f"--cluster-config {path}: file not found")
    elif address and HEAD_NODE_CONFIG.is_file():
        file = HEAD_NODE_CONFIG
    elif address and (file := running_autoscaler_config(address)) is not None:
        if not file.is_file():
            raise ValueError(f"the autoscaler running here reads {file}, which this process cannot read: "
                             f"pass its configuration with --cluster-config")
    else:
        return None
    return ClusterShape.from_config(yaml.safe_load(file.read_text()) or {}, source=str(file))


def grows_elsewhere(shape: ClusterShape | None) -> str | None:
    """Why trials may run on machines other than this one because the autoscaler adds nodes there
    (None when it adds none, or adds them on this machine, as the local twin does)."""
    if shape is not None and shape.can_grow() and not shape.on_this_machine:
        return f"its autoscaler adds nodes ({shape.describe()})"
    return None


DRIVER_CPU_SHARE = 0.01  # a Tune function that only launches Train workers holds almost nothing


@dataclass
class ResourcePlan:
    trial_resources: dict     # what the Tune function itself reserves
    worker_resources: dict    # per Ray Train worker (empty when training in the function)
    max_concurrent: int
    sized_by: str = ""        # what the concurrency was sized by, in words


def plan_resources(ctx: StudyContext, available: dict, requested_concurrency: int | None,
                   shape: ClusterShape | None = None) -> ResourcePlan:
    """Size each trial and the concurrency so every admitted trial can place all its workers.

    With an autoscaler (``shape``: its node types), the concurrency is what the cluster can hold
    once fully grown: trials beyond what is up now pend, and their resource requests are what make
    the autoscaler add nodes. Without one, it is what ``available`` (the nodes up now) holds.
    (Two 1-worker Train trials on 2 CPUs, each trial holding a whole CPU while its worker waits
    for one, hang for good: the Tune function of a Train trial therefore reserves only 0.01 CPU.)
    """
    worker = {"CPU": ctx.cpus_per_worker, **({"GPU": ctx.gpus_per_worker} if ctx.gpus_per_worker else {})}
    workers = ctx.workers_per_trial if ctx.uses_ray_train else 1
    trial = {"cpu": DRIVER_CPU_SHARE} if ctx.uses_ray_train else {k.lower(): v for k, v in worker.items()}
    asked = f"{workers} worker(s) x {_describe(worker)}"
    if shape is not None:
        if not any(t.holds(worker) for t in shape.types):
            raise ValueError(f"no node type can hold one worker ({_describe(worker)}); node types in "
                             f"{shape.source}: {shape.describe()}. Lower --cpus-per-worker or "
                             f"--gpus-per-worker, or add a node type that offers them")
        fit = shape.slots(worker) // workers
        where = f"the cluster fully grown ({shape.describe()})"
    else:
        per_trial = {k: v * workers for k, v in worker.items()}
        if ctx.uses_ray_train:
            per_trial["CPU"] += DRIVER_CPU_SHARE
        fit = min(int(available.get(k, 0.0) // v) for k, v in per_trial.items())
        where = f"the cluster ({_describe({k: available.get(k, 0.0) for k in ('CPU', 'GPU')})})"
    if fit < 1:
        running = [str(path) for _, path in running_autoscalers()] if shape is None else []
        hint = (f"; an autoscaler runs on this machine ({', '.join(running)}): pass its configuration with "
                f"--cluster-config so that the nodes it can add are counted" if running else "")
        raise ValueError(f"one trial needs {asked}, more than {where} holds: lower --workers-per-trial, "
                         f"--cpus-per-worker or --gpus-per-worker, or add nodes{hint}")
    if requested_concurrency and requested_concurrency > fit:
        log.warning("--max-concurrent %d lowered to %d: more trials could not place their workers "
                    "on %s", requested_concurrency, fit, where)
    concurrency = min(requested_concurrency or fit, fit)
    return ResourcePlan(trial, worker if ctx.uses_ray_train else {}, concurrency, where)


def _describe(resources: dict) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items())
