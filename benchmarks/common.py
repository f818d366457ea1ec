"""What the benchmarks share: a workspace holding the synthetic cohort they all train on, the
``Finding`` rows of the summary table, timing and subprocess helpers, and the standalone CLI.

Full size is 800 synthetic studies at 224 px (EfficientNet-B0 features, 7 x 7 x 1280; the
figures in the README were measured at this size, half the default study's cohort); ``--quick`` shrinks everything so the test suite can check the output format.
The workspace (default ``benchmarks/.work/``, git-ignored) keeps the cohort and its feature cache
between runs; the first run generates and encodes them (about 30 s at full size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# the first step of naive decoding attends over one key; Keras warns about that softmax
warnings.filterwarnings("ignore", message="You are using a softmax over axis -1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = ROOT / "benchmarks" / ".work"
FULL = {"n": 800, "image_size": 224}
QUICK = {"n": 48, "image_size": 64}
TARGET_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


@dataclass
class Finding:
    """One row of the summary table: a measurement, its baseline and their ratio."""

    benchmark: str                 # "1 Ray overhead", ...
    measure: str                   # what was compared, in words
    value: float                   # ours
    baseline: float                # the side-by-side baseline
    unit: str                      # unit of value and baseline
    ratio: float                   # as the target reads it (e.g. ours / baseline)
    target: tuple | None = None    # (op, value), e.g. ("<=", 1.10); None: no target set
    met: bool | None = field(init=False)

    def __post_init__(self):
        if self.target is not None and self.target[0] not in TARGET_OPS:
            raise ValueError(f"target op must be one of {list(TARGET_OPS)}, got {self.target[0]!r}")
        self.met = None if self.target is None else bool(TARGET_OPS[self.target[0]](self.ratio, self.target[1]))


@dataclass
class Outcome:
    """What one benchmark returns: its table rows and everything it measured (for results.json)."""

    name: str
    findings: list
    details: dict
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "seconds": round(self.seconds, 1),
                "findings": [asdict(f) for f in self.findings], "details": self.details}


class Workspace:
    """The synthetic cohort and its prepared dataset, created once and reused."""

    def __init__(self, root: str | Path = DEFAULT_WORKDIR, quick: bool = False):
        self.root = Path(root).resolve()
        self.quick = quick
        self.size = QUICK if quick else FULL
        self.root.mkdir(parents=True, exist_ok=True)
        self._dataset = None

    @property
    def cohort_dir(self) -> Path:
        return self.root / f"cohort-n{self.size['n']}-{self.size['image_size']}px"

    @property
    def feature_cache(self) -> Path:
        return self.cohort_dir / "cache" / "features"

    def encoder(self):
        from data.features import EncoderSpec

        # random (seeded) weights: speed does not depend on the weight values, and nothing downloads
        return EncoderSpec("EfficientNetB0", self.size["image_size"], None)

    def dataset(self, *, fresh: bool = False):
        """The prepared dataset (generated and encoded on first use). ``fresh``: run the
        preparation again (a cache hit) instead of returning the one already loaded."""
        if self._dataset is None or fresh:
            from data.dataset import prepare
            from data.synthetic import generate

            if not (self.cohort_dir / "cohort.parquet").exists():
                generate(self.cohort_dir, n=self.size["n"], seed=0, image_size=self.size["image_size"])
            self._dataset = prepare(self.cohort_dir, encoder=self.encoder(), progress=False)
        return self._dataset

    def study_flags(self) -> list[str]:
        """``study/run.py`` flags that select this cohort and encoder (so its cache is hit)."""
        return ["--data-dir", str(self.cohort_dir), "--image-size", str(self.size["image_size"]),
                "--weights", "none", "--no-report"]


def mean_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def graph_flops(function, *args) -> float:
    """Floating-point operations of one call of a ``tf.function`` on ``args``, counted by
    TensorFlow's profiler on the traced graph (matmuls, convolutions and elementwise ops)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = function.get_concrete_function(*args).graph
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def run_python(args: list[str], log_path: Path, *, env: dict | None = None) -> tuple[float, float]:
    """Run ``python ARGS`` from the project root; return ``(start unix time, wall seconds)``.

    Output goes to ``log_path``; a failure raises with the log's tail, so a broken benchmark
    says why instead of printing a meaningless ratio.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore", **(env or {})}
    started, clock = time.time(), time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=full_env)
    wall = time.perf_counter() - clock
    if proc.returncode:
        tail = "\n".join(log_path.read_text().splitlines()[-25:])
        raise RuntimeError(f"`python {' '.join(args)}` failed (exit {proc.returncode}); "
                           f"log {log_path}:\n{tail}")
    return started, wall


def machine() -> dict:
    """The machine and library versions the numbers were measured with."""
    from study.sweep.driver import package_versions  # the versions study.json records

    cpu = platform.processor() or platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    import tensorflow as tf

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1) if memory_gib else None,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(),
            **package_versions()}


def format_table(findings: list) -> str:
    """The summary table as aligned text."""
    head = ("benchmark", "measure", "ours", "baseline", "ratio", "target", "met")
    rows = [head]
    for f in findings:
        target = f"{f.target[0]} {f.target[1]:g}" if f.target else "-"
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append((f.benchmark, f.measure, f"{f.value:.4g} {f.unit}", f"{f.baseline:.4g} {f.unit}",
                     f"{f.ratio:.2f}", target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cli(module_name: str, run, argv=None, doc: str = "") -> Outcome:
    """Standalone entry point of one benchmark: ``python -m benchmarks.<name> [--quick]``."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{module_name}",
                                description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the output)")
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where the cohort and runs are kept")
    a = p.parse_args(argv)
    outcome = run_timed(run, Workspace(a.workdir, a.quick))
    print("\n" + format_table(outcome.findings))
    return outcome


def run_timed(run, ws: Workspace) -> Outcome:
    """Run one benchmark and record its wall time on the Outcome it returns."""
    start = time.perf_counter()
    outcome = run(ws)
    outcome.seconds = time.perf_counter() - start
    return outcome


def write_results(path: Path, outcomes: list, quick: bool) -> None:
    """``results.json``: the machine, the size, and every benchmark's findings and details."""
    payload = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "quick": quick, "machine": machine(),
               "benchmarks": [o.to_dict() for o in outcomes]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float))
    tmp.replace(path)
