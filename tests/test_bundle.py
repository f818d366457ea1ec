"""Export and predict: choosing a configuration and a seed, the model card, the inputs of a
prediction, and (with real trained trials) a bundle that reproduces its trial's predictions."""
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data.schema import CohortError, validate_inputs
from study.bundle.card import card_markdown
from study.bundle.choose import ChoiceError, check_seed, choose_config, typical_seed
from study.bundle.format import FORMAT, MANIFEST, BundleError, read_manifest
from study.results.tables import load

from .fixture_experiment import make_experiment

OBJECTIVES = {"val_rouge_l": "max", "val_oc_accuracy": "max", "val_ml_f1": "max"}


@pytest.fixture(scope="module")
def hand_trials(tmp_path_factory):
    return load(make_experiment(tmp_path_factory.mktemp("hand")))["trials"]


def test_config_by_id_and_by_best_mean_on_the_front(hand_trials):
    assert choose_config(hand_trials, OBJECTIVES, config_id="c3") == "c3"
    # worked out by hand: MTL-TP (c4) has the best mean ROUGE-L (0.60), MTL-EQ (c3) the best OC (0.62)
    assert choose_config(hand_trials, OBJECTIVES, best="val_rouge_l") == "c4"
    assert choose_config(hand_trials, OBJECTIVES, best="val_oc_accuracy") == "c3"


@pytest.mark.parametrize("kwargs, message", [
    ({"config_id": "nope"}, "--config-id 'nope': no such configuration in the study; configurations with finished trials: c0, c1"),
    ({"best": "val_bleu4"}, "--best 'val_bleu4': not an objective of this study; allowed: val_rouge_l, val_oc_accuracy, val_ml_f1"),
])
def test_a_configuration_not_in_the_study_is_refused_naming_what_is(hand_trials, kwargs, message):
    with pytest.raises(ChoiceError) as err:
        choose_config(hand_trials, OBJECTIVES, **kwargs)
    assert str(err.value).startswith(message)


def test_a_configuration_without_finished_trials_is_refused(hand_trials):
    trials = hand_trials.copy()
    trials.loc[trials["config_id"] == "c4", "status"] = "ERROR"
    with pytest.raises(ChoiceError, match="'c4': none of its trials finished"):
        choose_config(trials, OBJECTIVES, config_id="c4")


def test_typical_seed_is_the_one_closest_to_the_means(hand_trials):
    # the fixture's seeds sit at mean - 0.01, mean, mean + 0.01 on every objective: repeat 1 is the mean
    mtl = hand_trials[hand_trials["config_id"] == "c4"].dropna(subset=["val_rouge_l"])
    assert typical_seed(mtl, OBJECTIVES) == (401, 0.0)
    seeds = pd.DataFrame({"seed": [1, 2, 3], "val_a": [0.0, 0.3, 1.0], "val_b": [0.0, 0.0, 0.0]})
    # mean 0.4333, sd 0.5132: distances 0.844, 0.260, 1.104 (b has no spread: unit 1, all zero)
    seed, distance = typical_seed(seeds, {"val_a": "max", "val_b": "max"})
    assert seed == 2 and distance == pytest.approx((0.4333333 - 0.3) / 0.5131601, rel=1e-5)


def test_seed_check():
    assert check_seed(None, [4, 5], 5) == 5
    assert check_seed(4, [4, 5], 5) == 4
    with pytest.raises(ChoiceError, match="--seed 7: the bundle holds the models of seeds 4, 5"):
        check_seed(7, [4, 5], 5)


def _card(ci95):
    cell = {"mean": 0.41, "seeds": 1 if ci95 is None else 3, "ci95": ci95}
    return {"config_id": "c1", "configuration": {"params": {"alpha": 0.6}}, "objectives": {"val_rouge_l": "max"},
            "study": {"name": "s", "created": 0}, "default_seed": {"seed": 3, "reason": "the only seed"},
            "data": {"source": "synthetic", "cohort_dir": "/c", "fingerprint": "f", "split_sizes": {},
                     "image_encoder": {"name": "EfficientNetB0", "image_size": 224}, "encoder_weights_loaded": "random",
                     "warning": "image encoder has RANDOM weights"},
            "metrics": {"rouge_l": {"val": cell, "test": cell}}, "seeds": [{"seed": 3, "trial_id": "t", "best_epoch": 2,
                                                                             "validation": {"val_rouge_l": 0.41}}],
            "intended_use": "research", "limits": ["Research use only. Not a medical device."],
            "versions": {"keras": "3"}, "search_space": "params: {}"}


def test_model_card_shows_intervals_and_says_when_there_is_none():
    assert "| rouge_l (objective) | 0.410 [0.380, 0.440] | 0.410 [0.380, 0.440] |" in card_markdown(_card([0.38, 0.44]))
    one = card_markdown(_card(None))
    assert "0.410 (one seed: no interval)" in one and "**warning**: image encoder has RANDOM weights" in one
    assert one.splitlines()[2] == "**Research use only. Not a medical device.**"


def test_inputs_to_predict_on_need_only_an_id_and_an_image():
    table = validate_inputs(pd.DataFrame({"sample_id": ["a", "b"], "image_path": ["a.png", "b.png"],
                                          "heartrate": [80.0, None]}), "clinical.csv")
    assert list(table.columns[:3]) == ["sample_id", "image_path", "o2sat"]
    assert table["o2sat"].isna().all() and table["heartrate"].tolist()[0] == 80.0
    assert table["chief_complaint"].isna().all()


@pytest.mark.parametrize("frame, message", [
    ({"sample_id": ["a"]}, "clinical.csv: missing column(s) ['image_path']; a table to predict on needs ['sample_id', 'image_path']"),
    ({"sample_id": ["a", "b"], "image_path": ["a.png", "b.png"], "sbp": [120, "high"]},
     "clinical.csv: column 'sbp', row 1 (sample_id 'b'): 'high' (str) breaks the rule: number or missing"),
    ({"sample_id": ["a", "a"], "image_path": ["a.png", "b.png"]},
     "clinical.csv: column 'sample_id', row 1: 'a' repeats; sample ids must be unique"),
])
def test_bad_inputs_to_predict_on_are_named(frame, message):
    with pytest.raises(CohortError) as err:
        validate_inputs(pd.DataFrame(frame), "clinical.csv")
    assert str(err.value).startswith(message)


def test_a_bundle_of_another_format_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(f'{{"format": {FORMAT + 1}, "seeds": []}}')
    with pytest.raises(BundleError, match=f"format {FORMAT + 1}, this version reads format {FORMAT}"):
        read_manifest(tmp_path)


# ---- refused inputs of the two commands (the docs' table of refused inputs is generated from these)
@dataclass
class Refusal:
    id: str
    argv: list     # {exp}, {bundle}, {out}, {images}, {csv}, {cohort}, {tmp} are filled in
    expect: str    # the one-line message starts with this (paths shown as DIR)
    csv: dict | None = None  # columns of the clinical CSV written to {csv}
    bundle: dict = field(default_factory=dict)  # changes to the hand-made bundle's manifest


REFUSALS = [
    Refusal("export: not an experiment directory", ["export", "{tmp}/nowhere", "--config-id", "c1", "--out", "{out}"],
            "EXPERIMENT_DIR DIR/nowhere: no study.json; not a study experiment directory"),
    Refusal("export: unknown configuration", ["export", "{exp}", "--config-id", "c9", "--out", "{out}"],
            "--config-id 'c9': no such configuration in the study; configurations with finished trials: c0"),
    Refusal("export: --best names no objective", ["export", "{exp}", "--best", "val_bleu4", "--out", "{out}"],
            "--best 'val_bleu4': not an objective of this study; allowed: val_rouge_l, val_oc_accuracy, val_ml_f1"),
    Refusal("export: both --config-id and --best", ["export", "{exp}", "--config-id", "c1", "--best", "val_ml_f1",
                                                    "--out", "{out}"],
            "python -m study.export: argument --best: not allowed with argument --config-id"),
    Refusal("export: --out holds files", ["export", "{exp}", "--config-id", "c1", "--out", "{exp}"],
            "--out DIR/exp: already exists and is not an empty folder; choose a new folder"),
    Refusal("export: a trial without kept weights", ["export", "{exp}", "--config-id", "c1", "--out", "{out}"],
            "trial t10 of configuration c1: no weights.npz in DIR/exp/trials/t10"),
    Refusal("export: --retrain with no seed", ["export", "{exp}", "--config-id", "c1", "--out", "{out}", "--retrain", "0"],
            "--retrain 0: must be at least 1 (the number of seeds to train)"),
    Refusal("export: --retrain-on a split that is none", ["export", "{exp}", "--config-id", "c1", "--out", "{out}",
                                                          "--retrain", "2", "--retrain-on", "validate"],
            "--retrain-on validate: must be one of train, train+validate"),
    Refusal("export: --retrain-on without --retrain", ["export", "{exp}", "--config-id", "c1", "--out", "{out}",
                                                       "--retrain-on", "train+validate"],
            "--retrain-on train+validate: only with --retrain R"),
    Refusal("export: --retrain of trials without their records", ["export", "{exp}", "--config-id", "c1", "--out",
                                                                  "{out}", "--retrain", "2"],
            "configuration c1: DIR/exp/trials/t10/result.json not found; its settings are recorded there"),
    Refusal("predict: not a bundle", ["predict", "{tmp}", "--cohort", "{cohort}", "--out", "{out}.parquet"],
            "DIR: not a model bundle (no bundle.json)"),
    Refusal("predict: a bundle of another format", ["predict", "{bundle}", "--cohort", "{cohort}", "--out", "{out}.parquet"],
            "DIR/bundle/bundle.json: format 2, this version reads format 1", bundle={"format": 2}),
    Refusal("predict: an incomplete bundle", ["predict", "{bundle}", "--cohort", "{cohort}", "--out", "{out}.parquet"],
            "DIR/bundle: incomplete bundle, missing ['models/seed-9.keras']",
            bundle={"seeds": [{"seed": 5, "file": "models/seed-5.keras"}, {"seed": 9, "file": "models/seed-9.keras"}]}),
    Refusal("predict: a seed the bundle does not hold", ["predict", "{bundle}", "--cohort", "{cohort}", "--seed", "7",
                                                         "--out", "{out}.parquet"],
            "--seed 7: the bundle holds the models of seeds 5"),
    Refusal("predict: --images without --clinical", ["predict", "{bundle}", "--images", "{images}", "--out", "{out}.parquet"],
            "--images needs --clinical FILE.csv"),
    Refusal("predict: --out not Parquet", ["predict", "{bundle}", "--cohort", "{cohort}", "--out", "{out}.csv"],
            "--out DIR/out.csv: must end in .parquet"),
    Refusal("predict: --out exists", ["predict", "{bundle}", "--cohort", "{cohort}", "--out", "{cohort}/cohort.parquet"],
            "--out DIR/cohort/cohort.parquet: already exists"),
    Refusal("predict: cohort without its table", ["predict", "{bundle}", "--cohort", "{images}", "--out", "{out}.parquet"],
            "DIR/images/cohort.parquet: no cohort file"),
    Refusal("predict: clinical CSV without image_path", ["predict", "{bundle}", "--images", "{images}", "--clinical", "{csv}",
                                                         "--out", "{out}.parquet"],
            "DIR/clinical.csv: missing column(s) ['image_path']", csv={"sample_id": ["a"]}),
    Refusal("predict: a clinical value of the wrong type", ["predict", "{bundle}", "--images", "{images}", "--clinical",
                                                            "{csv}", "--out", "{out}.parquet"],
            "DIR/clinical.csv: column 'sbp', row 1 (sample_id 'b'): 'high' (str) breaks the rule: number or missing",
            csv={"sample_id": ["a", "b"], "image_path": ["a.png", "b.png"], "sbp": ["120", "high"]}),
    Refusal("predict: an image that is not there", ["predict", "{bundle}", "--images", "{images}", "--clinical", "{csv}",
                                                    "--out", "{out}.parquet"],
            "DIR/clinical.csv: column 'image_path', row 1 (sample_id 'b'): image DIR/images/b.png not found",
            csv={"sample_id": ["a", "b"], "image_path": ["a.png", "b.png"]}),
]


def prepare_refusal(case: Refusal, tmp: Path) -> list:
    """The files a case needs (a hand-made experiment and bundle, a cohort, images, a CSV) and its argv."""
    from data.preprocess import Preprocessor
    from data.synthetic import generate

    exp = make_experiment(tmp / "exp")
    generate(tmp / "cohort", n=40, seed=0, image_size=32)
    cohort = pd.read_parquet(tmp / "cohort" / "cohort.parquet")
    bundle = tmp / "bundle"
    (bundle / "models").mkdir(parents=True)
    (bundle / "preprocessor.json").write_text(json.dumps(Preprocessor.fit(cohort[cohort["split"] == "train"]).to_dict()))
    for name in ("encoder.weights.h5", "encoder_stats.npz", "models/seed-5.keras"):
        (bundle / name).write_bytes(b"")
    manifest = {"format": 1, "config_id": "c1", "seeds": [{"seed": 5, "file": "models/seed-5.keras"}],
                "default_seed": {"seed": 5, "reason": "the only seed"}, **case.bundle}
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    (tmp / "images").mkdir()
    Image.new("L", (32, 32)).save(tmp / "images" / "a.png")
    if case.csv is not None:
        pd.DataFrame(case.csv).to_csv(tmp / "clinical.csv", index=False)
    fill = {"exp": exp, "bundle": bundle, "out": tmp / "out", "images": tmp / "images", "csv": tmp / "clinical.csv",
            "cohort": tmp / "cohort", "tmp": tmp}
    return [a.format(**fill) for a in case.argv]


def refusal_message(case: Refusal, tmp: Path) -> str:
    """Prepare and run the case; return the one line it stops with (paths under ``tmp`` as DIR)."""
    return run_refusal(prepare_refusal(case, tmp), tmp)


def run_refusal(argv: list, tmp: Path) -> str:
    from study.export import main as export_main
    from study.predict import main as predict_main

    command = {"export": export_main, "predict": predict_main}[argv[0]]
    try:
        command(argv[1:])
    except SystemExit as exc:
        return str(exc.code).replace(str(tmp), "DIR")
    return "(accepted: the case's test fails)"


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", REFUSALS, ids=[c.id for c in REFUSALS])
def test_export_and_predict_refuse_bad_input_with_one_line(case, tmp_path):
    argv = prepare_refusal(case, tmp_path)
    before = _snapshot(tmp_path)
    message = run_refusal(argv, tmp_path)
    assert message.startswith(case.expect), message
    assert "\n" not in message and "Traceback" not in message
    assert _snapshot(tmp_path) == before, "a file was written or changed"


# ---- a real study: export, then predict, against what its trials recorded
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A smoke study of two configurations with two seeds each, and the bundle of one of them."""
    from study.export import main as export_main
    from study.run import main as run_main

    tmp = tmp_path_factory.mktemp("studied")
    exp = run_main(["--storage", str(tmp), "--data-dir", str(tmp / "cohort"), *TINY, "--search-space", "smoke",
                    "--num-samples", "2", "--repeats", "2", "--max-epochs", "2", "--name", "smoke"])
    bundle = export_main([str(exp), "--best", "val_rouge_l", "--out", str(tmp / "bundle")])
    return exp, bundle, tmp


def _predict(*argv):
    from study.predict import main as predict_main

    return predict_main([str(a) for a in argv] + ["--no-progress"])


def _recorded(exp: Path, bundle: Path, seed: int) -> pd.DataFrame:
    manifest = json.loads((bundle / MANIFEST).read_text())
    trial = next(s["trial_id"] for s in manifest["seeds"] if s["seed"] == seed)
    return pd.read_parquet(exp / "trials" / trial / "predictions.parquet")


FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def _assert_reproduces(predicted: pd.DataFrame, recorded: pd.DataFrame):
    assert predicted["sample_id"].tolist() == recorded["sample_id"].tolist()
    assert predicted["generated"].tolist() == recorded["generated"].tolist()
    assert predicted["acuity_pred"].tolist() == recorded["acuity_pred"].tolist()
    for f in FINDINGS:
        np.testing.assert_array_equal(predicted[f"prob_{f}"].to_numpy(), recorded[f"prob_{f}"].to_numpy())
        assert predicted[f].tolist() == recorded[f"pred_{f}"].tolist()


@pytest.mark.slow
def test_a_bundle_reproduces_its_trials_predictions_exactly(studied, tmp_path):
    exp, bundle, tmp = studied
    manifest = json.loads((bundle / MANIFEST).read_text())
    trials = pd.read_parquet(exp / "trials.parquet")
    config = trials[trials["config_id"] == manifest["config_id"]]
    assert sorted(s["seed"] for s in manifest["seeds"]) == sorted(config["seed"])  # every seed, one model each
    for seed in [s["seed"] for s in manifest["seeds"]]:  # each seed's model gives its own trial's records
        predicted = _predict(bundle, "--cohort", tmp / "cohort", "--split", "test", "--seed", seed,
                             "--out", tmp_path / f"p{seed}.parquet")
        _assert_reproduces(predicted, _recorded(exp, bundle, seed))
    card = json.loads((bundle / "model_card.json").read_text())
    objective = card["metrics"]["rouge_l"]["val"]
    values = config["val_rouge_l"]
    assert objective["seeds"] == 2 and objective["mean"] == pytest.approx(values.mean())
    low, high = objective["ci95"]  # Student-t over two seeds, clipped to [0, 1]
    half = 12.7062047 * values.std(ddof=1) / np.sqrt(2)
    assert low == pytest.approx(max(values.mean() - half, 0.0)) and high == pytest.approx(min(values.mean() + half, 1.0))
    assert "Not a medical device" in (bundle / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_raw_images_predict_as_the_cached_features_do(studied, tmp_path):
    from study.bundle.images import encode_images
    from study.bundle.predictor import Bundle, cohort_studies

    exp, bundle, tmp = studied
    cohort = pd.read_parquet(tmp / "cohort" / "cohort.parquet")
    test = cohort[cohort["split"] == "test"]
    test.drop(columns=["split", "report", "acuity", *FINDINGS]).to_csv(tmp_path / "clinical.csv", index=False)
    raw = _predict(bundle, "--images", tmp / "cohort", "--clinical", tmp_path / "clinical.csv",
                   "--cache-dir", tmp_path / "cache", "--out", tmp_path / "raw.parquet")
    cached = _predict(bundle, "--cohort", tmp / "cohort", "--out", tmp_path / "cached.parquet")
    pd.testing.assert_frame_equal(raw, cached)
    loaded = Bundle(bundle)
    studies, features = cohort_studies(loaded, tmp / "cohort", "test")
    again = encode_images(loaded.directory, loaded.manifest, studies["image_path"], cache_dir=tmp_path / "cache",
                          progress=False)  # from the cache the first call wrote
    np.testing.assert_array_equal(again, features)


@pytest.mark.slow
def test_a_bundle_predicts_in_a_fresh_process_without_ray(studied, tmp_path):
    exp, bundle, tmp = studied
    out = tmp_path / "p.parquet"
    script = ("import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError
              "from study.predict import main\n"
              f"main([{str(bundle)!r}, '--cohort', {str(tmp / 'cohort')!r}, '--out', {str(out)!r}, '--no-progress'])\n"
              "assert sys.modules['ray'] is None and not any(m.startswith('ray.') for m in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seed = json.loads((bundle / MANIFEST).read_text())["default_seed"]["seed"]
    assert f"model of seed {seed}" in done.stdout
    _assert_reproduces(pd.read_parquet(out), _recorded(exp, bundle, seed))


@pytest.mark.slow
def test_an_unreadable_image_is_named_with_its_row(studied, tmp_path):
    exp, bundle, tmp = studied
    (tmp_path / "images").mkdir()
    Image.new("L", (32, 32)).save(tmp_path / "images" / "a.png")
    (tmp_path / "images" / "b.png").write_bytes(b"not a png")
    pd.DataFrame({"sample_id": ["a", "b"], "image_path": ["a.png", "b.png"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(SystemExit) as stop:
        _predict(bundle, "--images", tmp_path / "images", "--clinical", tmp_path / "c.csv", "--out", tmp_path / "p.parquet")
    assert str(stop.value.code).startswith(f"{tmp_path / 'c.csv'}: column 'image_path', row 1 (sample_id 'b'): "
                                           f"{tmp_path / 'images' / 'b.png'}: cannot read image")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.slow
def test_retrain_on_train_and_validate_trains_new_seeds_and_exports_them(studied, tmp_path):
    """``--retrain 1 --retrain-on train+validate``: a study of its own beside the original, the
    configuration's settings unchanged but for the refit (both splits, the median best epoch),
    a new seed, and a bundle that reproduces the new trial; the same command again resumes that
    study instead of training twice."""
    from study.export import main as export_main

    exp, bundle, tmp = studied
    trials = pd.read_parquet(exp / "trials.parquet")
    original = json.loads((bundle / MANIFEST).read_text())
    config_id = original["config_id"]
    mine = trials[trials["config_id"] == config_id]
    epochs = max(1, int(round(mine["best_epoch"].median())))
    argv = [str(exp), "--config-id", config_id, "--retrain", "1", "--retrain-on", "train+validate"]
    out = export_main([*argv, "--out", str(tmp_path / "retrained")])
    target = exp.parent / f"{exp.name}-retrain-{config_id}-on-train-validate"
    again = pd.read_parquet(target / "trials.parquet")
    assert len(again) == 1 and again["status"].tolist() == ["TERMINATED"]
    assert int(again["epochs_run"].iloc[0]) == epochs == int(again["best_epoch"].iloc[0])
    assert int(again["seed"].iloc[0]) not in set(mine["seed"].astype(int))
    before = json.loads((exp / "trials" / mine["trial_id"].iloc[0] / "result.json").read_text())["settings"]
    after = json.loads((target / "trials" / again["trial_id"].iloc[0] / "result.json").read_text())["settings"]
    assert after == {**before, "fit_on": "train+validate", "epochs": epochs}
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["retrained_from"]["config_id"] == config_id and len(manifest["seeds"]) == 1
    assert "validation metrics are on data it was trained on" in (out / "MODEL_CARD.md").read_text()
    seed = manifest["seeds"][0]["seed"]
    predicted = _predict(out, "--cohort", tmp / "cohort", "--split", "test", "--out", tmp_path / "p.parquet")
    _assert_reproduces(predicted, _recorded(target, out, seed))
    export_main([*argv, "--out", str(tmp_path / "again")])  # resumes the finished study: nothing trains
    assert pd.read_parquet(target / "trials.parquet")["trial_id"].tolist() == again["trial_id"].tolist()
    assert len(json.loads((target / "study.json").read_text())["runs"]) == 2


def test_the_card_says_what_the_model_reads_and_learns():
    from study.bundle.card import model_sentence

    iu = {"vitals": False, "categoricals": False, "chief_complaint": True, "icd_title": False, "acuity": False}
    assert model_sentence({"tasks": ["text", "ml"]}, iu) == (
        "A cross-modal multi-task network reading image features and the chief complaint (or indication), "
        "trained on 2 tasks: the report, five findings.")
    assert model_sentence({}, {}) == (
        "A cross-modal multi-task network reading image features and six triage vitals, gender and ethnicity, "
        "the chief complaint (or indication), the ICD title, trained on 3 tasks: the report, ordinal acuity 1-5, "
        "five findings.")
    assert model_sentence({"tasks": "text", "modalities": ["image"]}, {}) == (
        "A single-task network reading image features, trained on 1 task: the report.")
