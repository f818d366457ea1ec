"""A local twin of ``cluster.yaml`` on this machine, to rehearse the cluster path.

    python -m study.cluster up [DIRECTORY] [--config cluster.yaml]   # prints the address to use
    python -m study.cluster kill-node NODE_ID [DIRECTORY]            # a spot reclaim
    python -m study.cluster down [DIRECTORY]                         # ends only this cluster

See :mod:`study.sweep.twin`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from data.cli import python_command
from study.sweep.twin import CLUSTER_YAML, down, remove_node, up


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
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
    return p


def main(argv=None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    if args.command == "up":
        state = up(Path(args.directory), Path(args.config))
        print(f"local cluster up at {state['address']} (node types of {state['source']})\n"
              f"run a study on it:\n  RAY_AUTH_MODE=token {python_command()} study/run.py --address {state['address']} "
              f"--cluster-config {state['autoscaler_config']} --workers-per-trial 2 --gpus-per-worker 1\n"
              f"end it:\n  {python_command()} -m study.cluster down {args.directory}")
    elif args.command == "kill-node":
        print(f"killed node {args.node_id}: {remove_node(Path(args.directory), args.node_id)} process(es)")
    else:
        print(f"ended {down(Path(args.directory))} process(es) of the local cluster in {args.directory}")


if __name__ == "__main__":
    main()
