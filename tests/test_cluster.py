"""Cluster: cluster.yaml validity and security, remote results storage through pyarrow, and
multi-node behaviour on a simulated cluster (ray.cluster_utils.Cluster, CPU only)."""
import json
import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from study.storage import Location, Remote, bundle_dataset, local_dataset

ROOT = Path(__file__).resolve().parent.parent
RAY_PORTS = {6379, 8265, 10001}
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


def load_cluster_yaml():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_rays_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load_cluster_yaml())
    validate_config(config)
    assert config["provider"]["type"] == "aws"
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] == 0 and workers["max_workers"] >= 1


def test_cluster_yaml_is_secure():
    config = load_cluster_yaml()
    rules = config["provider"]["security_group"]["IpPermissions"]
    for rule in rules:
        ports = set(range(rule["FromPort"], rule["ToPort"] + 1))
        assert not ports & RAY_PORTS, f"inbound rule opens a Ray port: {rule}"
        assert all(r["CidrIp"] != "0.0.0.0/0" for r in rule.get("IpRanges", [])), "SSH open to the world"
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token" in c and "ray start" in c for c in commands)
    text = (ROOT / "cluster.yaml").read_text()
    for pattern in (r"AKIA[0-9A-Z]{16}", r"aws_secret_access_key", r"arn:aws:iam::\d{12}",
                    r"(?<!\d)\d{12}(?!\d)", r"BEGIN (RSA|OPENSSH) PRIVATE KEY"):
        assert not re.search(pattern, text, flags=re.I), f"secret-like text matches {pattern}"


def test_remote_round_trip_through_pyarrow(tmp_path):
    uri = f"file://{tmp_path}/bucket/exp"
    src = tmp_path / "local"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "x.json").write_text("1")
    (src / "a" / "w.npz").write_bytes(b"w")
    remote = Remote(uri)
    remote.upload(src / "a", "trials/a")
    assert remote.exists("trials/a/b/x.json")
    got = remote.download("trials", tmp_path / "back", skip_suffixes=(".npz",))
    assert [p.name for p in got] == ["x.json"] and (tmp_path / "back" / "a" / "b" / "x.json").read_text() == "1"
    location = Location(f"file://{tmp_path}/bucket", "exp", local_root=tmp_path / "work")
    assert location.local_dir.parent.parent == tmp_path / "work" and location.local_dir.name == "exp"
    assert location.remote.exists("trials/a/w.npz")
    assert Location(f"file://{tmp_path}/other", "exp", tmp_path / "work").local_dir != location.local_dir


def test_dataset_bundle_is_self_contained(tiny_dataset, tmp_path, monkeypatch):
    from data.dataset import PreparedDataset
    from study import storage

    bundle = bundle_dataset(tiny_dataset.directory, tmp_path / "bundle")
    Remote(f"file://{tmp_path}/remote").upload(bundle, "dataset/fp")
    monkeypatch.setattr(storage, "DEFAULT_LOCAL_ROOT", tmp_path / "node-cache")
    local = local_dataset(f"file://{tmp_path}/remote/dataset/fp")
    assert local_dataset(f"file://{tmp_path}/remote/dataset/fp") == local  # cached per node
    copy = PreparedDataset.load(local)
    assert (copy.split("train")["image_features"] == tiny_dataset.split("train")["image_features"]).all()


def test_pulls_fetch_only_what_changed(tmp_path):
    remote = Remote(f"file://{tmp_path}/bucket/exp")
    src = tmp_path / "src"
    for name in ("a", "b"):
        (src / name).mkdir(parents=True)
        (src / name / "result.json").write_text(name)
    remote.upload(src, "trials")
    first = remote.download("trials", tmp_path / "local")
    assert sorted(p.parent.name for p in first) == ["a", "b"]
    assert remote.download("trials", tmp_path / "local") == []  # nothing changed: nothing fetched
    (src / "b" / "result.json").write_text("b, finished again")
    remote.upload(src / "b" / "result.json", "trials/b/result.json")
    again = remote.download("trials", tmp_path / "local")
    assert again == [tmp_path / "local" / "b" / "result.json"] and again[0].read_text() == "b, finished again"


def test_bundle_marker_goes_last_and_an_incomplete_bundle_is_refused(tiny_dataset, tmp_path, monkeypatch):
    import pyarrow.fs as pafs

    from study import storage

    bundle = bundle_dataset(tiny_dataset.directory, tmp_path / "bundle")
    order, real = [], pafs.copy_files
    monkeypatch.setattr(pafs, "copy_files", lambda src, dst, **kw: (order.append(Path(dst).name), real(src, dst, **kw)))
    Remote(f"file://{tmp_path}/remote").upload(bundle, "dataset/fp", last="meta.json")
    assert order[-1] == "meta.json" and sorted(order) == sorted(storage.BUNDLE_FILES)
    (tmp_path / "remote" / "dataset" / "fp" / "features.npy").unlink()  # as if cut off mid-upload
    monkeypatch.setattr(storage, "DEFAULT_LOCAL_ROOT", tmp_path / "node-cache")
    with pytest.raises(FileNotFoundError, match=r"incomplete dataset bundle, missing \['features.npy'\]"):
        local_dataset(f"file://{tmp_path}/remote/dataset/fp")
    assert not (tmp_path / "node-cache" / "datasets" / "fp").exists()  # nothing half-cached


@pytest.mark.slow
def test_sweep_with_results_on_a_uri(tmp_path, monkeypatch):
    from study import storage
    from study.run import main

    monkeypatch.setattr(storage, "DEFAULT_LOCAL_ROOT", tmp_path / "cache")
    uri = f"file://{tmp_path}/bucket/studies"
    main(["--storage", uri, "--name", "remote", "--search-space", "smoke", "--num-samples", "2",
          "--max-epochs", "1", "--data-dir", str(tmp_path / "cohort"), *TINY])
    remote = tmp_path / "bucket" / "studies" / "remote"
    trials = pd.read_parquet(remote / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    for tid in trials["trial_id"]:
        assert (remote / "trials" / tid / "result.json").exists()
        assert json.loads((remote / "trials" / tid / "checkpoint" / "checkpoint.json").read_text())["latest"]
    assert (remote / "study.json").exists() and list((remote / "dataset").glob("*/features.npy"))
    assert list((tmp_path / "cache" / "experiments").glob("*/remote/study.log"))  # the working copy


def _node_of(trial_dir: Path) -> set:
    return {json.loads(p.read_text())["node_id"] for p in (trial_dir / "workers").glob("rank-*.json")}


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow
def test_two_worker_trials_span_nodes_and_survive_node_loss(cluster, tmp_path):
    """Each trial's two Ray Train workers land on different nodes; removing one of those nodes
    during the second (last) trial makes it resume from its checkpoint, and the sweep records
    every trial exactly once."""
    from study.run import main

    c, workers = cluster
    result = {}
    args = ["--address", c.address, "--storage", str(tmp_path), "--name", "nodes",
            "--search-space", "smoke", "--num-samples", "2", "--max-epochs", "4",
            # 0.9 CPU per worker on 1-CPU nodes: two workers never share a node, and the
            # trials' 0.01-CPU Tune functions still fit beside them
            "--workers-per-trial", "2", "--cpus-per-worker", "0.9", "--max-failures", "3",
            "--data-dir", str(tmp_path / "cohort"), *TINY]
    thread = threading.Thread(target=lambda: result.setdefault("dir", main(args)))
    thread.start()
    trials_dir = tmp_path / "nodes" / "trials"
    deadline = time.time() + 400
    victim = None
    while time.time() < deadline and victim is None:  # the second trial, two epochs in
        done = [d for d in trials_dir.glob("*") if (d / "result.json").exists()]
        for trial_dir in trials_dir.glob("*"):
            pointer = trial_dir / "checkpoint" / "checkpoint.json"
            if done and trial_dir not in done and pointer.exists() and \
                    json.loads(pointer.read_text())["latest"] >= "epoch-0002":
                victim = trial_dir
                break
        time.sleep(0.5)
    assert victim is not None, "the second trial never reached its second epoch"
    nodes = _node_of(victim)
    assert len(nodes) == 2, f"workers of {victim.name} share a node: {nodes}"
    lost = next(w for w in workers if w.node_id in nodes)  # a worker node, never the head
    c.remove_node(lost)
    c.add_node(num_cpus=1)  # the autoscaler's replacement
    thread.join(timeout=400)
    assert not thread.is_alive()
    trials = pd.read_parquet(tmp_path / "nodes" / "trials.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique and (trials["status"] == "TERMINATED").all()
    epochs = pd.read_parquet(tmp_path / "nodes" / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert sorted(epochs[epochs["trial_id"] == victim.name]["epoch"]) == [1, 2, 3, 4]
    assert "resumed from" in (victim / "trial.log").read_text()
    for trial_dir in trials_dir.glob("*"):
        assert len(_node_of(trial_dir)) == 2
