"""The baseline of benchmark 1: a sweep's trials re-run in a plain loop, one process, no Ray.

    python -m benchmarks.plain_loop EXPERIMENT_DIR OUT_DIR

Reads the settings and seeds that ``study/run.py`` recorded for each trial of EXPERIMENT_DIR and
runs the same trainings and evaluations with :func:`study.trial.run_trial` on the same prepared
data (found the way ``study/run.py`` finds it), in the order the sweep started them. Each trial
writes into ``OUT_DIR/trials/<trial_id>/`` exactly what it writes in a sweep, so both sides do the
same work; only Ray and Tune are missing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plain_loop", description=__doc__.split("\n")[0])
    p.add_argument("experiment_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    a = p.parse_args(argv)
    study_path = a.experiment_dir / "study.json"
    if not study_path.exists():
        raise SystemExit(f"{study_path}: not found; EXPERIMENT_DIR must be a study/run.py experiment")
    study = json.loads(study_path.read_text())

    from study.spec.plan import cohort_dir_of
    from study.trial.prepare import prepare_data
    from study.spec.request import TrialRequest
    from study.trial.runner import run_trial

    args = argparse.Namespace(**study["config"])
    dataset = prepare_data(args, cohort_dir_of(args))
    objectives = [o["metric"] for o in study["search_space"]["objectives"]]
    recorded = [json.loads(p.read_text()) for p in sorted(a.experiment_dir.glob("trials/*/result.json"))]
    results = []
    for r in sorted(recorded, key=lambda r: r["started"]):
        request = TrialRequest(r["trial_id"], r["settings"], r["params"], str(dataset.directory),
                               str(a.out_dir / "trials" / r["trial_id"]), objectives, r["seed"],
                               config_id=r.get("config_id", ""), repeat=r.get("repeat", 0))
        results.append(run_trial(request))
        print(f"trial {r['trial_id']}: {results[-1]['train_seconds']:.1f} s training, "
              f"{results[-1]['eval_seconds']:.1f} s evaluation", flush=True)
    return results


if __name__ == "__main__":
    main()
