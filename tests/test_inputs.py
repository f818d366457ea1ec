"""Bad input is stopped at the door: each kind below ends `python study/run.py` (or
`python -m study.evaluate`) before Ray starts or anything is written, with one line that names the
flag, file, key or column, and leaves existing results alone. The README's troubleshooting table
lists these kinds with their messages."""
import hashlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.run import main as run_main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


@dataclass
class Case:
    id: str
    argv: list                       # {store}, {space}, {cohort}, {file} are filled in
    expect: str                      # regex the one-line message must match
    space: str | None = None         # search space YAML text written to {space}
    cohort: object = None            # a function corrupting the cohort table written to {cohort}
    file: str | None = None          # text written to {file}
    extra: dict = field(default_factory=dict)


def _set(column, row, value):
    def corrupt(df):
        df[column] = df[column].astype(object)
        df.loc[row, column] = value
        return df
    return corrupt


SPACE_OK = "sampler: random\nfixed: {epochs: 1}\nparams:\n  num_heads: {type: categorical, choices: [2, 3]}\n"

CASES = [
    # ---- flags: ranges, signs, types; zero is a value, not "unset"
    Case("num-samples negative", ["--num-samples", "-1"], r"^--num-samples: must be an integer >= 1, got -1$"),
    Case("num-samples zero", ["--num-samples", "0"], r"^--num-samples: must be an integer >= 1, got 0$"),
    Case("num-samples not a number", ["--num-samples", "abc"], r"--num-samples: invalid int value: 'abc'"),
    Case("repeats zero", ["--repeats", "0"], r"^--repeats: must be an integer >= 1, got 0$"),
    Case("max-epochs zero", ["--max-epochs", "0"], r"^--max-epochs: must be an integer >= 1, got 0$"),
    Case("max-failures negative (endless retries)", ["--max-failures", "-1"], r"^--max-failures: must be an integer >= 0 and <= 100"),
    Case("max-failures huge", ["--max-failures", "1000"], r"^--max-failures: must be an integer >= 0 and <= 100"),
    Case("seed negative", ["--seed", "-1"], r"^--seed: must be an integer >= 0"),
    Case("data-seed negative", ["--data-seed", "-1"], r"^--data-seed: must be an integer >= 0"),
    Case("cpus-per-worker zero", ["--cpus-per-worker", "0"], r"^--cpus-per-worker: must be a number >= 0.01, got 0.0$"),
    Case("gpus-per-worker negative", ["--gpus-per-worker", "-1"], r"^--gpus-per-worker: must be a number >= 0.0, got -1.0$"),
    Case("max-concurrent negative", ["--max-concurrent", "-1"], r"^--max-concurrent: must be an integer >= 1"),
    Case("workers-per-trial zero", ["--workers-per-trial", "0"], r"^--workers-per-trial: must be an integer >= 1"),
    Case("trials-per-gpu zero", ["--trials-per-gpu", "0"], r"^--trials-per-gpu: must be an integer >= 1, got 0$"),
    Case("trials-per-gpu beside gpus-per-worker", ["--trials-per-gpu", "4", "--gpus-per-worker", "1"],
         r"^--trials-per-gpu 4 and --gpus-per-worker 1: give one of them \(N trials per GPU is --gpus-per-worker 1/N\)$"),
    Case("a GPU share that does not divide a GPU", ["--gpus-per-worker", "0.3"],
         r"^--gpus-per-worker 0.3: a share of a GPU must divide it \(1/N: 0.5, 0.25, ...\)"),
    Case("a GPU share with several workers per trial", ["--trials-per-gpu", "2", "--workers-per-trial", "2"],
         r"^--gpus-per-worker 0.5 with --workers-per-trial 2: several workers per trial need a whole GPU each"),
    Case("a fractional number of GPUs above one", ["--gpus-per-worker", "1.5"],
         r"^--gpus-per-worker 1.5: above 1, a whole number of GPUs$"),
    Case("n-synthetic too small", ["--n-synthetic", "5"], r"^--n-synthetic: must be an integer >= 20, got 5$"),
    Case("image-size too small", ["--image-size", "8"], r"^--image-size: must be an integer >= 32 and <= 1024"),
    Case("unknown flag", ["--epochs", "3"], r"unrecognized arguments: --epochs 3"),
    Case("unknown data source", ["--data", "csv"], r"--data: invalid choice: 'csv'"),
    Case("name is a path", ["--name", "../x"], r"^--name: a plain name .*got '\.\./x'"),
    Case("name is absolute", ["--name", "/tmp/x"], r"^--name: a plain name .*got '/tmp/x'"),
    Case("name is hidden", ["--name", ".x"], r"^--name: a plain name"),
    # ---- --config files
    Case("config missing", ["--config", "{store}/nope.yaml"], r"^--config .*nope.yaml: file not found$"),
    Case("config unknown key", ["--config", "{file}"], r"^--config .*: unknown key\(s\) \['num_sample'\]", file="num_sample: 3\n"),
    Case("config duplicate key", ["--config", "{file}"], r"^--config .*: line 2: key 'seed' appears twice", file="seed: 1\nseed: 2\n"),
    Case("config wrong type", ["--config", "{file}"], r"^--config .*: num_samples: must be an integer >= 1, got 'many'", file="num_samples: many\n"),
    Case("config not a mapping", ["--config", "{file}"], r"^--config .*: expected a mapping", file="- a\n- b\n"),
    # ---- search spaces: every domain, every fixed value, conflicts, objectives
    Case("space unknown name", ["--search-space", "nosuch"], r"^--search-space nosuch: no search space named 'nosuch'"),
    Case("space not YAML", ["--search-space", "{space}"], r"^.*space.yaml: line \d+:", space="params: [a\n"),
    Case("space duplicate key", ["--search-space", "{space}"], r"space.yaml: line 3: key 'fixed' appears twice",
         space="sampler: random\nfixed: {epochs: 1}\nfixed: {epochs: 2}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("heads do not divide d_model", ["--search-space", "{space}"],
         r"space.yaml: params at num_heads=5: d_model must be divisible by num_heads, got d_model=48, num_heads=5",
         space="sampler: random\nfixed: {d_model: 48}\nparams:\n  num_heads: {type: categorical, choices: [2, 5]}\n"),
    Case("negative loss weight", ["--search-space", "{space}"], r"space.yaml: fixed.alpha: alpha \(a loss weight\) must be a finite number >= 0, got -1",
         space="sampler: random\nfixed: {alpha: -1}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("loss weights sum to zero", ["--search-space", "{space}"], r"space.yaml: params at num_heads=2, alpha=0, beta=0, gamma=0: the loss weights of the trained tasks .* sum to 0",
         space="sampler: random\nfixed: {alpha: 0, beta: 0, gamma: 0}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("weights of trained tasks zero", ["--search-space", "{space}"], r"the loss weights of the trained tasks \(beta=0\) sum to 0",
         space="sampler: random\nfixed: {tasks: [oc], beta: 0}\nobjectives: [{metric: val_oc_accuracy, mode: max}]\n"
               "params:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("unknown weighting", ["--search-space", "{space}"], r"fixed.weighting: weighting must be one of \['static', .*'dbmtl'\], got 'mgda'",
         space="sampler: random\nfixed: {weighting: mgda}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("batch size zero", ["--search-space", "{space}"], r"fixed.batch_size: batch_size must be >= 1, got 0",
         space="sampler: random\nfixed: {batch_size: 0}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("learning rate not a number", ["--search-space", "{space}"], r"fixed.learning_rate: learning_rate must be a number, got 'fast'",
         space="sampler: random\nfixed: {learning_rate: fast}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("dropout out of range", ["--search-space", "{space}"], r"params at dropout=1.5: dropout must be < 1.0, got 1.5",
         space="sampler: random\nparams:\n  dropout: {type: float, low: 0.1, high: 1.5}\n"),
    Case("unknown schedule", ["--search-space", "{space}"], r"params at schedule='step': schedule must be one of",
         space="sampler: random\nparams:\n  schedule: {type: categorical, choices: [cosine, step]}\n"),
    Case("objective nobody reports", ["--search-space", "{space}"], r"objectives\[0\].metric: no trial reports 'val_foo'",
         space="sampler: random\nobjectives: [{metric: val_foo, mode: max}]\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("objective of an untrained task", ["--search-space", "{space}"], r"objectives\[0\]: val_rouge_l needs the text task, which no configuration trains",
         space="sampler: random\nfixed: {tasks: [oc, ml]}\nobjectives: [{metric: val_rouge_l, mode: max}]\n"
               "params:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("fixed weights beside a simplex", ["--search-space", "{space}"], r"fixed.alpha: loss_weights \(simplex\) sets alpha, beta and gamma",
         space="sampler: random\nfixed: {alpha: 0.5}\nparams:\n  loss_weights: {type: simplex}\n"),
    Case("unknown setting", ["--search-space", "{space}"], r"fixed.heads: unknown setting",
         space="sampler: random\nfixed: {heads: 2}\nparams:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("empty float range", ["--search-space", "{space}"], r"params.learning_rate: low must be < high",
         space="sampler: random\nparams:\n  learning_rate: {type: float, low: 0.01, high: 0.001}\n"),
    Case("strategy option no trial reads", ["--search-space", "{space}"],
         r"params.cagrad_c: only weighting cagrad reads it, and the default weighting is 'static': no trial would use",
         space="sampler: random\nparams:\n  cagrad_c: {type: float, low: 0.1, high: 0.9}\n"),
    Case("more configurations than the budget", ["--search-space", "methods", "--num-samples", "30"],
         r"^--num-samples: at most 28 \(the sum of .*methods.yaml's budget per weighting; fewer stops after that many turns\), got 30$"),
    Case("--set without =", ["--set", "dropout"], r"^--set 'dropout': expected KEY=VALUE"),
    Case("--set a searched setting", ["--set", "num_heads=2"], r"^--set: num_heads: the space varies it"),
    Case("--set out of range", ["--set", "dropout=1.5"], r"^--set: .*--set.dropout: dropout must be < 1.0, got 1.5"),
    # ---- resume is the same study
    Case("resume of nothing", ["--name", "ghost", "--resume"], r"^--resume: no study in .*ghost to continue"),
    Case("resume with another space", ["--name", "prior", "--resume", "--search-space", "paper"],
         r"^--resume: --search-space 'paper' differs from the study's 'smoke'"),
    Case("resume with other epochs", ["--name", "prior", "--resume", "--max-epochs", "9"],
         r"^--resume: --max-epochs 9 differs from the study's 1"),
    Case("a second study under one name", ["--name", "prior"], r"prior already holds a study\. Continue it with: \S*python study/run.py --storage \S+ --name prior --resume"),
    # ---- where things go and come from
    Case("storage is not a directory", ["--storage", "{file}/sub"], r"^--storage .*/sub: cannot write there \(.* is not a directory\)", file="x"),
    Case("cache-dir is not a directory", ["--cache-dir", "{file}/sub"], r"^--cache-dir .*/sub: cannot write there", file="x"),
    Case("address nothing answers", ["--address", "127.0.0.1:1"], r"^--address 127.0.0.1:1: no Ray cluster answers there within 10 s"),
    Case("address malformed", ["--address", "headnode"], r"^--address headnode: expected HOST:PORT"),
    Case("cluster-config missing", ["--cluster-config", "{store}/nope.yaml"], r"^--cluster-config .*nope.yaml: file not found$"),
    Case("local storage on a cloud cluster", ["--cluster-config", str(ROOT / "cluster.yaml")],
         r"^--storage .*: a path on this machine, but trials may run on others .*Pass --storage s3://"),
    Case("mimic without data-dir", ["--data", "mimic"], r"^--data mimic needs --data-dir"),
    Case("mimic data-dir without cohort", ["--data", "mimic", "--data-dir", "{store}/none"], r"^--data-dir .*none: no cohort.parquet there"),
    Case("bertscore model not on this machine", ["--bertscore-model", "no-such-model"],
         r"^--bertscore-model no-such-model: not a local directory and not in the Hugging Face cache"),
    Case("bertscore layers zero", ["--bertscore-layers", "0"], r"^--bertscore-layers: must be an integer >= 1, got 0$"),
    Case("bertscore rescale without a baseline", ["--bertscore-rescale"],
         r"^--bertscore-rescale: bert-score has no rescale baseline for the shipped MiniLM"),
    Case("objective of a learned scorer without weights", ["--search-space", "{space}"],
         r"^objective val_chexbert_f1 needs --learned-scorers chexbert with its weights on this machine$",
         space="sampler: random\nobjectives: [{metric: val_chexbert_f1, mode: max}]\n"
               "params:\n  num_heads: {type: categorical, choices: [2]}\n"),
    Case("weights file missing", ["--weights", "{store}/w.h5"], r"^--weights .*w.h5: expected imagenet, none, or an existing weights file$"),
    # ---- cohort tables: the column and the row
    Case("cohort column missing", [], r"cohort.parquet: missing column\(s\) \['report'\]", cohort=lambda df: df.drop(columns=["report"])),
    Case("cohort no rows", [], r"cohort.parquet: no rows$", cohort=lambda df: df.iloc[:0]),
    Case("every objective needs acuity, which the cohort lacks", ["--search-space", "{space}"],
         r"space.yaml: objectives: every objective \(val_oc_accuracy\) needs the oc task \(the cohort has no acuity\); "
         r"the cohort .+/cohort cannot train it: choose a space with text or ml objectives$",
         space="sampler: random\nobjectives: [{metric: val_oc_accuracy, mode: max}]\nfixed: {epochs: 1}\nparams:\n"
               "  num_heads: {type: categorical, choices: [2]}\n", cohort=lambda df: df.assign(acuity=pd.NA)),
    Case("every configuration trains only the task the cohort cannot", ["--search-space", "{space}"],
         r"space.yaml: configs: every configuration trains only the oc task \(the cohort has no acuity\); ",
         space="sampler: grid\nobjectives: [{metric: val_rouge_l, mode: max}, {metric: val_oc_accuracy, mode: max}]\n"
               "fixed: {epochs: 1}\nconfigs:\n  - {name: STL-oc, tasks: [oc]}\n", cohort=lambda df: df.assign(acuity=pd.NA)),
    Case("acuity missing in some rows", [], r"column 'acuity', row 3 \(sample_id '.+'\): missing in 1 of \d+ rows; give acuity "
         r"for every study or for none", cohort=_set("acuity", 3, np.nan)),
    Case("acuity fractional", [], r"column 'acuity', row 5 .*: 2.5 \(float\) breaks the rule: integer 1-5", cohort=_set("acuity", 5, 2.5)),
    Case("acuity out of range", [], r"column 'acuity', row 1 .*: 9 \(int\) breaks the rule: integer 1-5", cohort=_set("acuity", 1, 9)),
    Case("subject_id text", [], r"column 'subject_id', row 0 .*: '10000000' \(str\) breaks the rule: integer",
         cohort=lambda df: df.assign(subject_id=df["subject_id"].astype(str))),
    Case("report empty", [], r"column 'report', row 7 .*: '  ' \(str\) breaks the rule: non-empty text", cohort=_set("report", 7, "  ")),
    Case("report missing", [], r"column 'report', row 4 .*: a missing value breaks the rule: non-empty text", cohort=_set("report", 4, None)),
    Case("finding not 0/1", [], r"column 'Edema', row 0 .*: 2 \(int\) breaks the rule: 0 or 1", cohort=_set("Edema", 0, 2)),
    Case("vital stored as text", [], r"column 'o2sat', row 0 .*: '95.0' \(str\) breaks the rule: number or missing \(\d+ more",
         cohort=lambda df: _set("o2sat", 6, "high")(df.assign(o2sat=df["o2sat"].astype(str)))),
    Case("unknown split", [], r"column 'split', row 1 .*: 'dev' \(str\) breaks the rule", cohort=_set("split", 1, "dev")),
    Case("duplicate sample id", [], r"column 'sample_id', row 1: '.+' repeats",
         cohort=lambda df: _set("sample_id", 1, df["sample_id"][0])(df).astype({"sample_id": str})),
    Case("empty split", [], r"column 'split': no row in \['test'\]", cohort=lambda df: df.assign(split=df["split"].replace("test", "validate"))),
]


@pytest.fixture(scope="module")
def cohort_table(tmp_path_factory):
    from data.synthetic import generate

    out = tmp_path_factory.mktemp("cohort")
    generate(out, n=40, seed=0, image_size=32)
    return pd.read_parquet(out / "cohort.parquet")


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _prepare(case: Case, tmp_path: Path, cohort_table: pd.DataFrame) -> list:
    store = tmp_path / "store"
    prior = store / "prior"  # an existing study whose files must not change
    prior.mkdir(parents=True)
    (prior / "study.json").write_text(json.dumps({"config": {"search_space": "smoke", "max_epochs": 1, "seed": 0}}))
    (prior / "trials.parquet").write_bytes(b"results worth keeping")
    fill = {"store": str(store), "space": str(tmp_path / "space.yaml"), "file": str(tmp_path / "file.yaml"),
            "cohort": str(tmp_path / "cohort")}
    if case.space is not None:
        (tmp_path / "space.yaml").write_text(case.space)
    if case.file is not None:
        (tmp_path / "file.yaml").write_text(case.file)
    argv = [a.format(**fill) for a in case.argv]
    if case.cohort is not None:
        (tmp_path / "cohort").mkdir()
        case.cohort(cohort_table.copy()).to_parquet(tmp_path / "cohort" / "cohort.parquet")
        argv += ["--data", "mimic", "--data-dir", fill["cohort"]]
    space = [] if "--search-space" in argv else ["--search-space", "smoke"]
    return ["--storage", str(store), *space, *TINY, *argv]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_anything_runs(case, tmp_path, cohort_table):
    import ray

    argv = _prepare(case, tmp_path, cohort_table)
    before = _snapshot(tmp_path / "store")
    start = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        run_main(argv)
    message = stop.value.code
    assert isinstance(message, str), f"exit without a message: {message!r}"  # printed; exit status 1
    assert "\n" not in message and "Traceback" not in message, message
    assert re.search(case.expect, message), message
    assert _snapshot(tmp_path / "store") == before, "files were written or changed"
    assert not ray.is_initialized(), "Ray was started"
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("argv, expect", [
    (["--num-samples", "-1"], "--num-samples: must be an integer >= 1, got -1"),
    (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
])
def test_the_process_exits_non_zero_with_one_line_and_no_traceback(argv, expect, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "study" / "run.py"), "--storage", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.strip() == done.stderr.strip().splitlines()[-1] and expect in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("name, content, flags, expect", [
    ("r.txt", b"", [], "r.txt: no reports (the file is empty)"),
    ("r.txt", b"fine\n\xff\xfe\n", [], "r.txt: not UTF-8 text (byte 5 is b'\\xff')"),
    ("r.csv", b"", [], "r.csv: cannot read it as CSV"),
    ("r.parquet", b"PAR1 torn", [], "r.parquet: cannot read it as PARQUET"),
    ("r.txt", b"a\n", ["--bertscore-model", "no-such"],
     "--bertscore-model no-such: not a local directory and not in the Hugging Face cache"),
    ("r.txt", b"a\n", ["--bertscore-layers", "0"], "--bertscore-layers: must be an integer >= 1"),
])
def test_evaluate_refuses_unreadable_report_files(name, content, flags, expect, tmp_path):
    from study.evaluate import main as evaluate_main

    (tmp_path / name).write_bytes(content)
    hypotheses = tmp_path / "h.txt"
    hypotheses.write_text("a\n")
    with pytest.raises(SystemExit) as stop:
        evaluate_main([str(tmp_path / name), str(hypotheses), *flags])
    assert isinstance(stop.value.code, str) and expect in stop.value.code, stop.value.code


def test_a_full_disk_is_one_line_with_the_path_and_what_to_do(tmp_path, monkeypatch):
    import errno

    import study.sweep.driver

    def full(args, cohort_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cohort" / "cache" / "features.npy"))

    monkeypatch.setattr(study.sweep.driver, "prepare_data", full)
    with pytest.raises(SystemExit) as stop:
        run_main(["--storage", str(tmp_path), "--name", "x", "--search-space", "smoke", *TINY])
    assert stop.value.code == (f"{tmp_path}/cohort/cache/features.npy: No space left on device; free some space "
                               f"(or pass --storage / --cache-dir on another disk). Results already written are kept")


def test_a_torn_results_table_says_how_to_rebuild_it(tmp_path):
    from study.report import main as report_main

    for name in ("trials.parquet", "epochs.parquet", "predictions.parquet"):
        (tmp_path / name).write_bytes(b"PAR1 torn")
    with pytest.raises(SystemExit) as stop:
        report_main([str(tmp_path)])
    assert "trials.parquet: unreadable" in stop.value.code and "--resume" in stop.value.code


def test_bertscore_flags_reach_the_trials_settings(tmp_path):
    """--bertscore-model and --bertscore-layers typed on the command line become settings of every
    trial the plan asks for: through the flags, the plan and the trial request, as a sweep runs."""
    from study.spec.flags import parse_args
    from study.spec.plan import build_plan
    from study.spec.settings import build_configs

    model_dir = tmp_path / "clinicalbert"
    model_dir.mkdir()  # a local model directory: nothing to download
    plan = build_plan(parse_args(["--storage", str(tmp_path), "--search-space", "smoke", *TINY,
                                  "--bertscore-model", str(model_dir), "--bertscore-layers", "9"]))
    request = plan.context("dataset").request("t0", {"loss_weights_u1": 0.5, "loss_weights_u2": 0.5, "num_heads": 2})
    _, _, shipped = build_configs(request.settings)
    assert (shipped["bertscore_model"], shipped["bertscore_layers"], shipped["bertscore_rescale"]) == (str(model_dir), 9, False)
    default = build_plan(parse_args(["--storage", str(tmp_path), "--search-space", "smoke", *TINY]))
    _, _, opts = build_configs(default.context("dataset").request("t0", {"loss_weights_u1": 0.5, "loss_weights_u2": 0.5,
                                                                         "num_heads": 2}).settings)
    assert (opts["bertscore_model"], opts["bertscore_layers"]) == (None, 6)  # the shipped MiniLM, its last layer
