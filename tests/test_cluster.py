"""Cluster: cluster.yaml validity and security, remote results storage through pyarrow, and
multi-node behaviour on a local autoscaling twin of cluster.yaml (python -m study.cluster)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from study.results.remote import Location, Remote, bundle_dataset, local_dataset

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


def test_concurrency_comes_from_what_the_cluster_can_grow_to():
    """cluster.yaml starts with a 0-GPU head; its 8 gpu_worker nodes (1 GPU each) hold 4 trials of
    2 one-GPU workers. Sized from the GPUs up now (0), the study used to refuse to start."""
    from search_spaces import resolve
    from study.spec.resources import ClusterShape
    from study.spec.space_file import load_space
    from study.spec.request import StudyContext
    from study.spec.resources import plan_resources

    shape = ClusterShape.from_config(load_cluster_yaml(), source="cluster.yaml")
    ctx = StudyContext(load_space(resolve("smoke")), "", "", 0, workers_per_trial=2, gpus_per_worker=1)
    plan = plan_resources(ctx, {"CPU": 4.0}, None, shape)
    assert plan.max_concurrent == 4 and plan.trial_resources == {"cpu": 0.01}
    assert plan.worker_resources == {"CPU": 1.0, "GPU": 1.0}
    assert plan_resources(ctx, {"CPU": 4.0}, 10, shape).max_concurrent == 4
    assert plan_resources(ctx, {"CPU": 4.0}, 3, shape).max_concurrent == 3
    with pytest.raises(ValueError, match=r"one trial needs 2 worker.*more than the cluster \(4 CPU, 0 GPU\)"):
        plan_resources(ctx, {"CPU": 4.0}, None)  # no autoscaler: what is up now, as before
    too_big = StudyContext(ctx.space, "", "", 0, workers_per_trial=2, gpus_per_worker=2)
    with pytest.raises(ValueError, match=r"no node type can hold one worker \(1 CPU, 2 GPU\).*"
                                         r"head \(CPU 4, GPU 0; up to 1\); gpu_worker \(CPU 4, GPU 1; up to 8\)"):
        plan_resources(too_big, {"CPU": 4.0}, None, shape)


def test_a_running_autoscaler_is_found_by_its_cluster_and_named_when_it_cannot_be_used(tmp_path):
    """`ray start --head --autoscaling-config FILE` leaves no ~/ray_bootstrap_config.yaml: the
    monitor process's command line names FILE and the cluster, so the driver reads FILE; when it
    cannot tell which one applies, a refused GPU request says to pass --cluster-config."""
    from search_spaces import resolve
    from study.spec.request import StudyContext
    from study.spec.resources import plan_resources, running_autoscaler_config
    from study.spec.space_file import load_space

    config = tmp_path / "autoscaler.yaml"
    monitor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=127.0.0.1:59999",
                                f"--autoscaling-config={config}"])
    try:
        deadline = time.time() + 10
        while running_autoscaler_config("127.0.0.1:59999") is None and time.time() < deadline:
            time.sleep(0.1)
        assert running_autoscaler_config("127.0.0.1:59999") == config
        assert running_autoscaler_config("127.0.0.1:1") is None  # another cluster's
        ctx = StudyContext(load_space(resolve("smoke")), "", "", 0, gpus_per_worker=1)
        with pytest.raises(ValueError, match=rf"an autoscaler runs on this machine \(.*{config}.*\): pass its "
                                             r"configuration with --cluster-config"):
            plan_resources(ctx, {"CPU": 4.0}, None)
    finally:
        monitor.kill()


def test_the_worker_cap_counts_the_biggest_nodes_first():
    """Two GPU types under a cap of 3 worker nodes: 2 nodes of 8 GPUs (16 one-GPU workers) and then
    1 node of 1 GPU = 17 workers; the 4-CPU head holds none (no GPU)."""
    from study.spec.resources import ClusterShape

    shape = ClusterShape.from_config({
        "max_workers": 3, "head_node_type": "head",
        "available_node_types": {"head": {"resources": {"CPU": 4}},
                                 "small": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 8},
                                 "big": {"resources": {"CPU": 96, "GPU": 8}, "max_workers": 2}}})
    assert shape.slots({"CPU": 1, "GPU": 1}) == 17
    assert shape.slots({"CPU": 4}) == 1 + 2 * 24 + 1  # CPU-only workers: head, 2 big, 1 small (cap 3)
    with pytest.raises(ValueError, match="node type 'x' declares no resources"):
        ClusterShape.from_config({"available_node_types": {"x": {"resources": {}}}})


def test_the_local_twin_has_cluster_yamls_node_types_and_settings():
    from ray.autoscaler._private.util import validate_config

    from study.sweep.twin import FAKE_HEAD_TYPE, local_twin

    config = load_cluster_yaml()
    twin = local_twin(config, "127.0.0.1:1234")
    validate_config(twin)  # (prepare_config would read a defaults file the wheel lacks)
    assert twin["provider"]["type"] == "fake_multinode"
    for key in ("max_workers", "upscaling_speed", "idle_timeout_minutes"):
        assert twin[key] == config[key]
    renamed = {FAKE_HEAD_TYPE if n == config["head_node_type"] else n: spec
               for n, spec in config["available_node_types"].items()}
    assert set(twin["available_node_types"]) == set(renamed)
    for name, spec in renamed.items():
        got = twin["available_node_types"][name]
        assert got["resources"] == spec["resources"]
        assert (got["min_workers"], got["max_workers"]) == (spec.get("min_workers", 0), spec.get("max_workers", 0))


def test_local_storage_is_refused_where_other_machines_run_trials(tmp_path):
    """cluster.yaml's autoscaler adds AWS nodes: a local --storage would hold nothing they write.
    Refused before anything is written; a URI, or --shared-storage, is accepted."""
    from study.spec.resources import ClusterShape
    from study.sweep.nodes import off_this_machine
    from study.run import main
    from study.spec.flags import parse_args
    from study.spec.plan import check_storage_reach

    with pytest.raises(SystemExit, match=r"--storage .*a path on this machine.*gpu_worker.*s3://BUCKET.*--shared-storage"):
        main(["--cluster-config", str(ROOT / "cluster.yaml"), "--storage", str(tmp_path), "--name", "x", *TINY])
    assert not list(tmp_path.iterdir())
    reason = off_this_machine(ClusterShape.from_config(load_cluster_yaml()), here=None)
    for flags in (["--storage", f"file://{tmp_path}/bucket"], ["--storage", str(tmp_path), "--shared-storage"]):
        args = parse_args(flags)
        check_storage_reach(args, Location(args.storage, "x"), reason)
    twin = ClusterShape.from_config({"provider": {"type": "fake_multinode"}, "head_node_type": "h",
                                     "available_node_types": {"h": {"resources": {"CPU": 1}},
                                                              "w": {"resources": {"GPU": 1}, "max_workers": 2}}})
    assert off_this_machine(twin, here=None) is None  # the fake provider's nodes run here


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
    from study.results import remote as storage

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

    from study.results import remote as storage

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
    from study.results import remote as storage
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
        # finished: the evaluated weights and their configs stay, the resume checkpoint goes
        assert (remote / "trials" / tid / "weights.npz").exists() and (remote / "trials" / tid / "model.json").exists()
        assert not (remote / "trials" / tid / "checkpoint").exists()
    assert (remote / "study.json").exists() and list((remote / "dataset").glob("*/features.npy"))
    assert list((tmp_path / "cache" / "experiments").glob("*/remote/study.log"))  # the working copy


def test_down_ends_a_process_launched_while_it_runs(tmp_path):
    """As the autoscaler may launch a node while the twin is ending: a process of the twin that, on
    SIGTERM, has a detached helper start another of the twin's processes a moment later. `down`
    must end that one too, and nothing outside the twin."""
    from study.sweep.twin import STATE_FILE, down, own_processes

    directory = Path(tempfile.mkdtemp(prefix="mtl-", dir="/tmp"))
    (directory / STATE_FILE).write_text(json.dumps({"address": "127.0.0.1:1"}))
    marker = str(directory.resolve())
    late = f"import time; time.sleep(60)  # {marker}/late"
    launcher = tmp_path / "launcher.py"  # names the twin only in its argument, as a raylet does
    launcher.write_text(
        "import os, signal, subprocess, sys, time\n"
        "def launch(*_):  # the helper's own command line does not name the twin\n"
        "    subprocess.Popen(['sh', '-c', 'sleep 0.4; exec \"$0\" -c \"$LATE\"', sys.executable],\n"
        "                     env={**os.environ, 'LATE': sys.argv[2]}, start_new_session=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, launch)\n"
        "time.sleep(60)\n")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    subprocess.Popen([sys.executable, str(launcher), f"{marker}/launcher", late])
    try:
        deadline = time.time() + 10
        while not own_processes(directory) and time.time() < deadline:
            time.sleep(0.1)
        assert own_processes(directory), "the twin's first process did not start"
        down(directory, grace_s=2)
        time.sleep(0.5)
        assert not own_processes(directory)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        for p in own_processes(directory):
            p.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _node_of(trial_dir: Path) -> set:
    return {json.loads(p.read_text())["node_id"] for p in (trial_dir / "workers").glob("rank-*.json")}


@pytest.fixture
def local_cluster():
    """A twin of cluster.yaml on this machine (Ray's fake multi-node provider): a 0-GPU head and
    gpu_worker nodes (4 CPU, 1 GPU, min 0, max 8) launched by the real autoscaler on demand. The
    autoscaler looks every second and declares a node dead after 10 s of silence. Its own
    temporary directory (short: Ray's socket paths are limited) and ports; ending it touches no
    other process."""
    from study.sweep.twin import down, own_processes, up

    directory = Path(tempfile.mkdtemp(prefix="mtl-", dir="/tmp"))
    state = up(directory, ROOT / "cluster.yaml", update_interval_s=1, heartbeat_timeout_s=10)
    yield directory, state
    down(directory)
    assert not own_processes(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_autoscaling_cluster_launches_gpu_nodes_and_survives_node_loss(local_cluster, tmp_path):
    """The README's cluster command on a twin of cluster.yaml: no GPU exists when the study starts,
    the trials' requests make the autoscaler launch gpu_worker nodes (recorded in study.json),
    each trial's two workers get a GPU each on two nodes, and killing one of the second trial's
    nodes makes that trial resume from its checkpoint; every trial is recorded exactly once."""
    from study.sweep.twin import FAKE_HEAD_TYPE, remove_node

    directory, state = local_cluster
    out = tmp_path / "driver.log"
    command = [sys.executable, str(ROOT / "study" / "run.py"), "--address", state["address"],
               "--cluster-config", state["autoscaler_config"], "--storage", str(tmp_path), "--name", "nodes",
               "--search-space", "smoke", "--num-samples", "2", "--max-epochs", "4", "--max-concurrent", "1",
               "--workers-per-trial", "2", "--gpus-per-worker", "1", "--max-failures", "3",
               "--data-dir", str(tmp_path / "cohort"), *TINY]
    with open(out, "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                  env={**os.environ, "RAY_AUTH_MODE": "token"})
    try:
        trials_dir = tmp_path / "nodes" / "trials"
        deadline = time.time() + 400
        victim = None
        while time.time() < deadline and victim is None and driver.poll() is None:
            done = [d for d in trials_dir.glob("*") if (d / "result.json").exists()]
            for trial_dir in trials_dir.glob("*"):  # the second trial, two epochs in
                pointer = trial_dir / "checkpoint" / "checkpoint.json"
                if done and trial_dir not in done and pointer.exists() and \
                        json.loads(pointer.read_text())["latest"] >= "epoch-0002":
                    victim = trial_dir
                    break
            time.sleep(0.5)
        assert victim is not None, f"the second trial never reached its second epoch:\n{out.read_text()[-3000:]}"
        lost = sorted(_node_of(victim))[0]
        assert remove_node(directory, lost) >= 1
        assert driver.wait(timeout=400) == 0, out.read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    study = json.loads((tmp_path / "nodes" / "study.json").read_text())
    assert study["resources"]["max_concurrent"] == 1 and "fully grown" in study["resources"]["sized_by"]
    run = study["runs"][-1]
    launched = {n["node_id"]: n for n in run["nodes_launched"]}
    assert len(launched) >= 3 and {n["type"] for n in launched.values()} == {"gpu_worker"}  # 2 + a replacement
    assert lost in launched and lost in {n["node_id"] for n in run["nodes_ended"]}
    trials = pd.read_parquet(tmp_path / "nodes" / "trials.parquet")
    assert len(trials) == 2 and trials["trial_id"].is_unique and (trials["status"] == "TERMINATED").all()
    epochs = pd.read_parquet(tmp_path / "nodes" / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert sorted(epochs[epochs["trial_id"] == victim.name]["epoch"]) == [1, 2, 3, 4]
    assert "resumed from" in (victim / "trial.log").read_text()
    for trial_dir in trials_dir.glob("*"):
        ranks = [json.loads(p.read_text()) for p in (trial_dir / "workers").glob("rank-*.json")]
        assert len({r["node_id"] for r in ranks}) == 2 and all(r["node_id"] in launched for r in ranks)
        assert all(r["gpus"]["ray"] == ["0"] for r in ranks)  # each worker got its node's one GPU
    assert FAKE_HEAD_TYPE not in {n["type"] for n in launched.values()}


@pytest.mark.slow
def test_four_trials_share_one_gpu_node_at_a_quarter_gpu_each(local_cluster, tmp_path):
    """``--trials-per-gpu 4`` on the twin: the four trials' requests (1 CPU, 0.25 GPU) fit one
    gpu_worker node (4 CPU, 1 GPU), so the autoscaler launches one node and the four train at the
    same time there; every trial process records its GPU memory setting, made before TensorFlow
    initialised its devices (on this machine TensorFlow sees no GPU, and says so). No
    --cluster-config is given: the driver reads the configuration of the autoscaler it finds
    running for that cluster (without it, the GPU request would be refused)."""
    directory, state = local_cluster
    out = tmp_path / "driver.log"
    command = [sys.executable, str(ROOT / "study" / "run.py"), "--address", state["address"],
               "--storage", str(tmp_path), "--name", "packed",  # no --cluster-config: the running autoscaler's
               "--search-space", "smoke", "--num-samples", "4", "--max-epochs", "3", "--trials-per-gpu", "4",
               "--cpus-per-worker", "1", "--data-dir", str(tmp_path / "cohort"), *TINY]
    done = subprocess.run(command, stdout=open(out, "w"), stderr=subprocess.STDOUT, cwd=ROOT, timeout=600,
                          env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert done.returncode == 0, out.read_text()[-3000:]
    study = json.loads((tmp_path / "packed" / "study.json").read_text())
    assert study["resources"]["trial"] == {"cpu": 1.0, "gpu": 0.25}, study["resources"]
    # sized by the file the twin's autoscaler was started with, found without --cluster-config
    assert "gpu_worker (CPU 4, GPU 1; up to 8)" in study["resources"]["sized_by"]
    launched = study["runs"][-1]["nodes_launched"]
    assert [n["type"] for n in launched] == ["gpu_worker"]  # one node holds all four
    trials = pd.read_parquet(tmp_path / "packed" / "trials.parquet")
    assert len(trials) == 4 and (trials["status"] == "TERMINATED").all()
    # all four trained at once: the latest start comes before the earliest finish
    assert trials["started_at"].max() < trials["finished_at"].min()
    for trial_id in trials["trial_id"]:
        record = json.loads((tmp_path / "packed" / "trials" / trial_id / "workers" / "rank-0.json").read_text())
        assert record["node_id"] == launched[0]["node_id"] and record["gpus"]["ray"] == ["0"]
        assert record["gpu_memory"]["share"] == 0.25 and record["gpu_memory"]["mode"] == "none"
        assert record["gpus"]["tensorflow"] == []
