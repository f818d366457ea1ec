"""The layout's rules, checked by tools rather than comments: the import contracts of
pyproject.toml (import-linter), analysis and the report without Ray, a driver that never loads
TensorFlow, no private attribute of Ray or Optuna in the code, modules a reader can take in."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = [p for d in ("data", "model", "study", "search_spaces", "benchmarks") for p in (ROOT / d).rglob("*.py")]


def test_import_contracts_hold():
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"Contracts: 4 kept, 0 broken", done.stdout), done.stdout[-2000:]


def _python(code: str, tmp_path: Path, *, block_ray: bool):
    """Run ``code`` in a fresh interpreter; with ``block_ray``, ``import ray`` fails there as on a
    machine without Ray."""
    env_path = str(ROOT)
    if block_ray:
        fake = tmp_path / "no-ray" / "ray"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('Ray is not installed here')\n")
        env_path = f"{fake.parent}:{env_path}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_analysis_the_report_and_the_records_work_without_ray(tmp_path):
    """With Ray unimportable: analysis, the report command, evaluation, results and the plan
    import, and the report renders a study (the hand-made fixture) from its files alone."""
    from tests.fixture_experiment import make_experiment

    exp = make_experiment(tmp_path / "exp")
    done = _python(f"""
import sys
import study.analysis, study.report, study.evaluate, study.results.tables, study.spec.plan, study.dashboard
from study.report import main
main([{str(exp)!r}])
assert 'ray' not in sys.modules and 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if m in ('ray', 'tensorflow'))
print('ok')
""", tmp_path, block_ray=True)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    assert (exp / "summary.md").exists()


def test_ray_is_really_blocked_in_that_check(tmp_path):
    """The check above is meaningful only if the sweep layer then fails to import."""
    done = _python("import study.sweep.driver", tmp_path, block_ray=True)
    assert done.returncode == 1 and "Ray is not installed here" in done.stderr


def test_the_driver_loads_neither_tensorflow_nor_torch_nor_the_plotting_stack(tmp_path):
    """The driver's imports and what it does after the sweep without a report (the front of
    configuration means, written and printed) load none of TensorFlow, torch, seaborn or
    scipy.stats: each costs seconds of every study. On the old code scipy.stats came with the
    intervals' t quantile and seaborn with the summary's plot captions."""
    from tests.fixture_experiment import make_experiment

    exp = make_experiment(tmp_path / "exp")
    done = _python(f"""
import sys
import study.sweep.driver, study.run
from pathlib import Path
from study.analysis.configs import write_front
from study.analysis.summary import front_table
import pandas as pd
objectives = {{"val_rouge_l": "max", "val_oc_accuracy": "max", "val_ml_f1": "max"}}
configs = write_front(Path({str(exp)!r}), pd.read_parquet(Path({str(exp)!r}) / "trials.parquet"), objectives)
assert len(front_table(configs, objectives))
print(sorted(m for m in ("tensorflow", "torch", "seaborn", "scipy.stats") if m in sys.modules))
""", tmp_path, block_ray=False)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout[-500:] + done.stderr[-2000:]


PRIVATE = re.compile(r"ray\._private|ray\.[\w.]*\._\w|optuna\.[\w.]*\._\w|\._ot_\w|\._trial_id\b|\._storage\b|"
                     r"_trial_id_to_group")


@pytest.mark.parametrize("path", CODE, ids=[str(p.relative_to(ROOT)) for p in CODE])
def test_no_private_attribute_of_ray_or_optuna(path):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert not hits, hits


def test_modules_stay_readable():
    """No module of the layout over about 350 lines: a module that grows past it holds more than one idea."""
    long = {str(p.relative_to(ROOT)): n for p in CODE if (n := len(p.read_text().splitlines())) > 360}
    assert not long, long
