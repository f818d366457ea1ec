"""A local twin of ``cluster.yaml``, to rehearse the cluster path on one machine.

:func:`up` starts, on this machine, a Ray cluster with the node types and autoscaler settings of
``cluster.yaml``, run by Ray's fake multi-node provider: the real autoscaler launches real local
raylets when trials ask for resources, GPUs included (declared, not present). :func:`down` ends
that cluster's processes and nothing else (``ray stop`` would end every Ray process on the
machine, a colleague's study included). ``ray up`` itself cannot drive this provider: it reaches
a head node only through SSH or Docker. The command is ``python -m study.cluster``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from study.spec.resources import ClusterShape

# The fake provider's head node id (Ray's fake_multi_node provider gives its head this id).
FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"
ROOT = Path(__file__).resolve().parents[2]

CLUSTER_YAML = ROOT / "cluster.yaml"

FAKE_HEAD_TYPE = "ray.head.default"  # the fake provider names its head node type so

STATE_FILE = "cluster.json"          # in a twin's directory: its address and settings


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
                           f"python -m study.cluster down {directory} (with the project's environment)")
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
    return [p for p in found.values() if _running(p)]


def _running(process) -> bool:
    """Not ended and not a zombie (a zombie holds nothing; only its parent can reap it)."""
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def down(directory: Path, *, grace_s: float = 10.0, settle_s: float = 1.0, rounds: int = 5) -> int:
    """End the twin started in ``directory``: SIGTERM, then SIGKILL what is left. Returns how many
    processes were ended. Touches no process outside that cluster.

    Repeated, ``settle_s`` apart, until none is left: while a round is ending them the autoscaler
    may still launch a node, and a dying raylet may still start a runtime-env agent, reparented
    away from the processes already listed; a single pass left those running."""
    import psutil

    directory = Path(directory).resolve()
    ended = 0
    for _ in range(rounds):
        procs = own_processes(directory)
        if not procs:
            break
        ended += len(procs)
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=grace_s)
        time.sleep(settle_s)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return ended


def remove_node(directory: Path, node_id: str) -> int:
    """Kill one launched node of the twin in ``directory`` without warning, as a cloud reclaims a
    spot instance: its raylet and everything under it. The autoscaler notices the missing
    heartbeats and replaces the node if trials still need it. Returns how many processes ended."""
    import psutil

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
