"""What a cluster can grow to, and a local twin of ``cluster.yaml`` to rehearse the cluster path.

A study sizes its concurrency from the node types the autoscaler may launch (``cluster.yaml``:
each type's resources times its ``max_workers``), not from the nodes up at the moment: on a
cluster that starts with a GPU-less head and ``min_workers: 0`` GPU workers, the GPUs appear only
after trials ask for them.

``python -m study.cluster up`` starts, on this machine, a Ray cluster with the node types and
autoscaler settings of ``cluster.yaml``, run by Ray's fake multi-node provider: the real
autoscaler launches real local raylets when trials ask for resources, GPUs included (declared,
not present). ``python -m study.cluster down`` ends that cluster's processes and nothing else
(``ray stop`` would end every Ray process on the machine, a colleague's study included).
``ray up`` itself cannot drive this provider: it reaches a head node only through SSH or Docker.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = ROOT / "cluster.yaml"
# Where `ray up` leaves the autoscaler's configuration on the head node.
HEAD_NODE_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()
FAKE_HEAD_TYPE = "ray.head.default"  # the fake provider names its head node type so
STATE_FILE = "cluster.json"          # in a twin's directory: its address and settings


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


def find_shape(path: str | None = None, *, on_head: bool = False) -> ClusterShape | None:
    """The autoscaler's node types from ``path`` (``--cluster-config``), else, ``on_head`` (joining
    a cluster), from the copy ``ray up`` leaves on the head node. None: no such file."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ValueError(f"--cluster-config {path}: file not found")
    elif on_head and HEAD_NODE_CONFIG.is_file():
        file = HEAD_NODE_CONFIG
    else:
        return None
    return ClusterShape.from_config(yaml.safe_load(file.read_text()) or {}, source=str(file))


def reported_shape() -> ClusterShape | None:
    """The node types an autoscaler reported to the cluster Ray is connected to (KubeRay and
    Ray's v2 autoscaler report them; the v1 autoscaler that ``ray up`` starts does not)."""
    import ray

    if not ray.is_initialized():
        return None
    try:  # Ray keeps this behind a private accessor (Ray Data reads it the same way)
        config = ray._private.state.state.get_cluster_config()
    except Exception:
        return None
    if config is None or not config.node_group_configs:
        return None
    types = tuple(NodeType(g.name, {k: float(v) for k, v in g.resources.items()},
                           g.max_count if g.max_count >= 0 else 10**6)
                  for g in config.node_group_configs)
    return ClusterShape(types, source="the cluster's autoscaler")


def nodes() -> dict:
    """The cluster's nodes as Ray knows them now: id -> address, CPU, GPU, alive (a dead node's
    CPU and GPU read 0)."""
    import ray

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
    if shape is not None and shape.can_grow() and not shape.on_this_machine:
        return f"its autoscaler adds nodes ({shape.describe()})"
    return None


# --------------------------------------------------------------------------- the local twin

def local_twin(config: dict, gcs_address: str) -> dict:
    """``config`` (a cluster.yaml for a cloud) as a fake multi-node cluster on this machine: the
    same node types with their resources, ``min_workers``/``max_workers``, upscaling speed and idle
    timeout; no cloud provider, setup or start commands. The head type takes the fake provider's
    fixed name."""
    ClusterShape.from_config(config)  # every node type declares its resources
    head = config["head_node_type"]
    types = {}
    for name, spec in config["available_node_types"].items():
        types[FAKE_HEAD_TYPE if name == head else name] = {
            "resources": dict(spec.get("resources") or {}), "node_config": {},
            "min_workers": spec.get("min_workers", 0),
            "max_workers": spec.get("max_workers", 0 if name == head else config.get("max_workers", 0))}
    return {
        "cluster_name": f"{config.get('cluster_name', 'study')}-local",
        "max_workers": config.get("max_workers", 2),
        "upscaling_speed": config.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": config.get("idle_timeout_minutes", 5),
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs_address},
        "auth": {"ssh_user": os.environ.get("USER", "ray")},
        "available_node_types": types,
        "head_node_type": FAKE_HEAD_TYPE,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(directory: Path, config_path: Path = CLUSTER_YAML, *, update_interval_s: int = 5,
       heartbeat_timeout_s: int = 30) -> dict:
    """Start the twin of ``config_path`` with its temporary files in ``directory`` (kept short:
    Ray's socket paths must fit in 107 characters). Returns its state (address, config path)."""
    directory = Path(directory).resolve()
    if (directory / STATE_FILE).exists():
        raise RuntimeError(f"{directory} already holds a local cluster; end it with "
                           f"python -m study.cluster down {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    ip = "127.0.0.1"
    port = _free_port()
    config = yaml.safe_load(Path(config_path).read_text())
    twin = local_twin(config, f"{ip}:{port}")
    twin_path = directory / "autoscaler.yaml"
    twin_path.write_text(yaml.safe_dump(twin, sort_keys=False))
    head = twin["available_node_types"][FAKE_HEAD_TYPE]["resources"]
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "RAY_AUTH_MODE": "token",
           "AUTOSCALER_UPDATE_INTERVAL_S": str(update_interval_s),
           "AUTOSCALER_HEARTBEAT_TIMEOUT_S": str(heartbeat_timeout_s)}
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli), "start", "--head", f"--node-ip-address={ip}", f"--port={port}",
               f"--num-cpus={int(head.get('CPU', 0))}", f"--num-gpus={int(head.get('GPU', 0))}",
               f"--autoscaling-config={twin_path}", f"--temp-dir={directory / 'ray'}",
               "--include-dashboard=false", f"--dashboard-port={_free_port()}",
               f"--ray-client-server-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats"]
    state = {"address": f"{ip}:{port}", "autoscaler_config": str(twin_path),
             "source": str(Path(config_path).resolve()), "temp_dir": str(directory / "ray")}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2))  # first, so `down` finds it
    with open(directory / "ray-start.log", "w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120)
    if done.returncode:
        down(directory)
        raise RuntimeError(f"ray start failed (exit {done.returncode}); see {directory / 'ray-start.log'}")
    return state


def own_processes(directory: Path) -> list:
    """This twin's processes: every one whose command line names its temporary directory or its
    GCS port (Ray's client server names only the latter), and their descendants."""
    import psutil

    directory = Path(directory).resolve()
    marker = str(directory)
    state = directory / STATE_FILE
    port = json.loads(state.read_text())["address"].rsplit(":", 1)[1] if state.exists() else None

    def ours(part: str) -> bool:
        return marker in part or (port is not None and part.startswith(("--address=", "--gcs-address="))
                                  and part.endswith(f":{port}"))
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(ours(part) for part in (p.info["cmdline"] or [])):
                roots.append(p)
        except psutil.Error:
            continue
    found = {p.pid: p for p in roots}
    for p in roots:
        try:
            found.update({c.pid: c for c in p.children(recursive=True)})
        except psutil.Error:
            continue
    return list(found.values())


def down(directory: Path, *, grace_s: float = 10.0) -> int:
    """End the twin started in ``directory``: SIGTERM, then SIGKILL what is left. Returns how many
    processes were ended. Touches no process outside that cluster."""
    import psutil

    directory = Path(directory).resolve()
    procs = own_processes(directory)
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive + own_processes(directory):
        try:
            p.kill()
        except psutil.Error:
            pass
    (directory / STATE_FILE).unlink(missing_ok=True)
    return len(procs)


def remove_node(directory: Path, node_id: str) -> int:
    """Kill one launched node of the twin in ``directory`` without warning, as a cloud reclaims a
    spot instance: its raylet and everything under it. The autoscaler notices the missing
    heartbeats and replaces the node if trials still need it. Returns how many processes ended."""
    import psutil
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    if node_id == FAKE_HEAD_NODE_ID:
        raise ValueError(f"node {node_id} is the head: end the whole cluster with `down` instead")
    raylets = []
    for p in own_processes(directory):
        try:
            if p.name() == "raylet" and p.environ().get("RAY_OVERRIDE_NODE_ID_FOR_TESTING") == node_id:
                raylets.append(p)
        except psutil.Error:
            continue
    if not raylets:
        raise ValueError(f"node {node_id}: not a launched node of the local cluster in {directory}")
    victims = raylets + [c for r in raylets for c in r.children(recursive=True)]
    for p in victims:
        try:
            p.kill()
        except psutil.Error:
            pass
    return len(victims)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m study.cluster", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start a local twin of a cluster config (fake multi-node provider)")
    u.add_argument("directory", nargs="?", default="/tmp/mtl-study-cluster",
                   help="its temporary files (short path: Ray's socket paths are limited)")
    u.add_argument("--config", default=str(CLUSTER_YAML), help="cluster YAML to copy the node types from")
    d = sub.add_parser("down", help="end a local twin and only its processes")
    d.add_argument("directory", nargs="?", default="/tmp/mtl-study-cluster")
    k = sub.add_parser("kill-node", help="kill one launched node, as a cloud reclaims a spot instance")
    k.add_argument("node_id", help="as in trials/<id>/workers/rank-*.json or `ray status`")
    k.add_argument("directory", nargs="?", default="/tmp/mtl-study-cluster")
    args = p.parse_args(argv)
    if args.command == "up":
        state = up(Path(args.directory), Path(args.config))
        print(f"local cluster up at {state['address']} (node types of {state['source']})\n"
              f"run a study on it:\n  RAY_AUTH_MODE=token python study/run.py --address {state['address']} "
              f"--cluster-config {state['autoscaler_config']} --workers-per-trial 2 --gpus-per-worker 1\n"
              f"end it:\n  python -m study.cluster down {args.directory}")
    elif args.command == "kill-node":
        print(f"killed node {args.node_id}: {remove_node(Path(args.directory), args.node_id)} process(es)")
    else:
        print(f"ended {down(Path(args.directory))} process(es) of the local cluster in {args.directory}")


if __name__ == "__main__":
    main()
