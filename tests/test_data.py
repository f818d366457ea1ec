"""Data: synthetic cohort, MIMIC builder, preprocessing, cached features, input pipeline."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import features as features_mod
from data.cohort import balanced_subset, label_group, split_by_patient
from data.dataset import PreparedDataset, prepare
from data.features import EncoderSpec, ImageError, extract_features, extraction_log
from data.mimic import MimicError, build, extract_section, study_datetime
from data.preprocess import (VITAL_BOUNDS, Preprocessor, clean_vitals, decode_ordinal,
                             encode_ordinal)
from data.schema import FINDINGS, CohortError, read_cohort, validate
from data.synthetic import generate, render_image, sample_records
from data.text import Tokenizer, join_words, normalize_field, report_words

from .conftest import TINY_ENCODER
from .mimic_fixture import EXPECTED_DROPS, EXPECTED_KEPT, write_fixture


# ---- synthetic cohort ---------------------------------------------------------------------------
def test_generator_is_deterministic_for_a_seed(tmp_path):
    a, b, c = (generate(tmp_path / name, n=30, seed=seed, image_size=32)
               for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    pa, pb, pc = (pd.read_parquet(p) for p in (a, b, c))
    pd.testing.assert_frame_equal(pa, pb)
    assert not pa["report"].equals(pc["report"])
    def digests(name):
        return {p.name: hashlib.sha1(p.read_bytes()).hexdigest()
                for p in sorted((tmp_path / name / "images").iterdir())}

    assert digests("a") == digests("b") and len(digests("a")) == 30  # same seed, same bytes
    assert digests("a") != digests("c")


def _row(**on):
    row = {f: 0 for f in FINDINGS}
    row.update(on)
    row["side"] = "right"
    return row


@pytest.mark.parametrize("finding, region", [
    ("Cardiomegaly", (slice(125, 150), slice(70, 90))),      # beside the normal heart border
    ("Pleural Effusion", (slice(130, 150), slice(40, 100))),  # right lung base (image left)
    ("Edema", (slice(60, 140), slice(80, 100))),             # perihilar right lung
    ("Consolidation", (slice(100, 135), slice(55, 80))),     # right mid/lower zone
    ("Atelectasis", (slice(130, 152), slice(40, 95))),       # right base
])
def test_each_finding_brightens_its_region(finding, region):
    normal = render_image(_row(), 224, np.random.default_rng(7)).astype(float)
    abnormal = render_image(_row(**{finding: 1}), 224, np.random.default_rng(7)).astype(float)
    assert abnormal[region].mean() > normal[region].mean() + 8, finding


def test_cohort_follows_schema_and_splits_by_patient(tiny_cohort):
    df = read_cohort(tiny_cohort)
    assert len(df) == 60 and set(df["split"]) == {"train", "validate", "test"}
    assert df.groupby("subject_id")["split"].nunique().max() == 1
    assert df["acuity"].between(1, 5).all()
    assert df["report"].str.contains("pneumothorax|effusion", case=False).any()


def test_pool_is_skewed_and_balanced_subset_evens_it():
    pool = sample_records(3000, np.random.default_rng(0))
    normal_share = (pool[list(FINDINGS)].sum(axis=1) == 0).mean()
    assert normal_share > 0.55
    pool["subject_id"] = np.arange(len(pool))
    pool["sample_id"] = pool["subject_id"]
    available = label_group(pool).groupby(pool["sample_id"]).first()
    subset = balanced_subset(pool, 600, seed=0)
    taken = available.loc[subset["sample_id"]].value_counts()
    avail = available.value_counts()
    assert len(subset) == 600
    for group, count in taken.items():  # equal quotas, unless a stratum ran out
        assert count == avail[group] or count >= taken.max() - 1, (group, count)
    assert (subset[list(FINDINGS)].sum(axis=1) == 0).mean() < 0.25


def test_vitals_follow_the_findings():
    pool = sample_records(4000, np.random.default_rng(1))
    clean, _ = clean_vitals(pool)
    assert clean.loc[pool["Edema"] == 1, "o2sat"].mean() < clean.loc[pool["Edema"] == 0, "o2sat"].mean() - 0.5
    assert clean.loc[pool["Consolidation"] == 1, "temperature"].mean() > clean.loc[
        pool["Consolidation"] == 0, "temperature"].mean() + 0.4
    assert pool["chief_complaint"].isin(["sob", "cp", "s/p fall", "abd pain"]).any()
    assert pool["report"].duplicated().sum() > 100  # duplicates across patients, as in MIMIC


def _cv_auc(x, y) -> float:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = np.issubdtype(np.asarray(x).dtype, np.number)
    model = make_pipeline(*([SimpleImputer(strategy="median"), StandardScaler()] if numeric
                            else [OneHotEncoder(handle_unknown="ignore")]), LogisticRegression(max_iter=2000))
    return roc_auc_score(y, cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1])


def test_no_non_imaging_group_gives_a_finding_away():
    """The default cohort (1,600 of a 4,800 pool, balanced): a cross-validated logistic regression on
    any one non-imaging group stays below AUC 0.85 for every finding, while acuity needs both the
    vitals and the findings (together they predict it far better than either alone)."""
    pool = sample_records(4800, np.random.default_rng(0))
    pool["subject_id"], pool["sample_id"] = np.arange(len(pool)), np.arange(len(pool)).astype(str)
    df = balanced_subset(pool, 1600, seed=0)
    vitals, _ = clean_vitals(df)
    groups = {"vitals": vitals[["o2sat", "heartrate", "resprate", "sbp", "dbp", "temperature"]].to_numpy(float),
              "demographics": df[["gender", "ethnicity"]], "chief complaint": df[["chief_complaint"]],
              "ICD title": df[["icd_title"]]}
    aucs = {(g, f): _cv_auc(x, df[f]) for g, x in groups.items() for f in FINDINGS}
    print({k: round(v, 3) for k, v in aucs.items()})
    assert max(aucs.values()) <= 0.85, max(aucs.items(), key=lambda kv: kv[1])
    assert not any(word in title.lower() for title in pool["icd_title"].unique()
                   for word in ("atelectasis", "cardiomegaly", "consolidation", "edema", "effusion"))
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def acuity_accuracy(x):
        model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=3000))
        return cross_val_score(model, x, df["acuity"], cv=5).mean()

    findings = df[list(FINDINGS)].to_numpy(float)
    alone = {"vitals": acuity_accuracy(groups["vitals"]), "findings": acuity_accuracy(findings)}
    both = acuity_accuracy(np.hstack([groups["vitals"], findings]))
    assert both > max(alone.values()) + 0.1, (alone, both)


def test_reports_say_more_than_the_labels():
    pool = sample_records(2000, np.random.default_rng(2))
    words = {w for r in pool["report"] for w in r.lower().replace(".", " ").replace(",", " ").split()}
    assert len(words) > 150
    for device in ("pacemaker", "sternotomy", "endotracheal", "catheter", "granuloma"):
        assert pool["report"].str.contains(device, case=False).mean() > 0.01, device
    same_labels = pool[(pool[list(FINDINGS)].sum(axis=1) == 1) & (pool["Cardiomegaly"] == 1)]
    assert same_labels["report"].nunique() > 0.8 * len(same_labels)  # wording varies beyond the labels


def test_split_by_patient_hits_fractions():
    df = pd.DataFrame({"subject_id": np.repeat(np.arange(400), 2)})
    sizes = split_by_patient(df, seed=0).value_counts()
    assert abs(sizes["train"] - 560) <= 2 and abs(sizes["validate"] - 160) <= 2
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_patient(df, {"train": 0.5, "test": 0.1})


# ---- preprocessing ------------------------------------------------------------------------------
def test_cleaning_catches_planted_implausible_values():
    pool = sample_records(2000, np.random.default_rng(2))
    _, counts = clean_vitals(pool)
    assert counts["temperature"] == (pool["temperature"] == 67.0).sum() > 0
    assert counts["heartrate"] == (pool["heartrate"] == 0).sum() > 0
    assert counts["sbp"] == (pool["sbp"] == 999).sum() > 0
    for v, (lo, hi) in VITAL_BOUNDS.items():
        kept = clean_vitals(pool)[0][v].dropna()
        assert kept.between(lo, hi).all()


def test_scaling_uses_training_statistics_only(tiny_cohort):
    df = read_cohort(tiny_cohort)
    train, val = df[df["split"] == "train"], df[df["split"] == "validate"].copy()
    pre = Preprocessor.fit(train)
    assert pre.vital_max["heartrate"] == clean_vitals(train)[0]["heartrate"].max()
    val["heartrate"] = 240.0  # plausible but above the training max
    out = pre.vitals(val)
    assert np.allclose(out[:, 1], 1.0)  # clipped at the training max, not refitted
    refit = Preprocessor.fit(train)
    assert refit.to_dict()["vital_max"] == pre.to_dict()["vital_max"]
    missing = val.copy()
    missing["o2sat"] = np.nan
    enc = pre.vitals(missing)
    assert np.all(enc[:, 6] == 1)  # indicator set
    median = (pre.vital_median["o2sat"] - pre.vital_min["o2sat"]) / (pre.vital_max["o2sat"] - pre.vital_min["o2sat"])
    assert np.allclose(enc[:, 0], median)


def test_categoricals_have_unknown_bucket(tiny_cohort):
    df = read_cohort(tiny_cohort)
    pre = Preprocessor.fit(df[df["split"] == "train"])
    odd = df.head(2).copy()
    odd["gender"] = ["X", None]
    enc = pre.categoricals(odd)
    n_gender = len(pre.categories["gender"])
    assert enc[:, :n_gender].argmax(1).tolist() == [n_gender - 1] * 2
    assert enc.sum(1).tolist() == [2.0, 2.0]


def test_ordinal_encoding_round_trips():
    levels = np.array([1, 2, 3, 4, 5])
    enc = encode_ordinal(levels)
    assert enc.tolist()[0] == [0, 0, 0, 0] and enc.tolist()[4] == [1, 1, 1, 1]
    assert enc.tolist()[2] == [1, 1, 0, 0]
    assert decode_ordinal(enc).tolist() == levels.tolist()
    with pytest.raises(ValueError, match="1..5"):
        encode_ordinal([0])


def test_text_normalisation_expands_shorthand():
    assert normalize_field("SOB, CP..  s/p fall") == "shortness of breath chest pain status post fall"
    assert normalize_field("Abd pain") == "abdominal pain"
    assert normalize_field("cpr") == "cpr"  # whole words only
    assert normalize_field(None) == ""


def test_tokenizers_round_trip():
    reports = ["The heart is enlarged. No effusion.", "The lungs are clear."]
    tok = Tokenizer.fit((report_words(r) for r in reports), max_vocab=50, max_length=12,
                        add_start_end=True)
    ids = tok.encode(report_words(reports[0]))
    assert ids[0] == tok.start_id and len(ids) == 12
    assert join_words(tok.decode(ids)) == "the heart is enlarged. no effusion."
    assert Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict()))) == tok
    assert tok.decode(tok.encode(["unseen"])) == ["<unk>"]


# ---- MIMIC builder ------------------------------------------------------------------------------
@pytest.mark.parametrize("gzip", [True, False])
def test_mimic_fixture_builds_expected_cohort(tmp_path, gzip):
    cxr, ed = write_fixture(tmp_path, gzip=gzip)
    report = build(cxr, ed, tmp_path / "out", n=100)
    for reason, count in EXPECTED_DROPS.items():
        assert report["dropped"][reason] == count, reason
    assert report["selected"] == EXPECTED_KEPT
    df = read_cohort(tmp_path / "out")
    assert df.groupby("subject_id")["split"].nunique().max() == 1
    row = df.set_index("sample_id").loc["s50000001"]
    assert row["image_path"].endswith("d50000001-0.jpg")  # PA preferred over AP and lateral
    assert row["icd_title"] == "SHORTNESS OF BREATH"       # first-sequence diagnosis
    assert row["report"] == "The lungs are clear. No pleural effusion."
    assert (row["Cardiomegaly"], row["Edema"]) == (1, 0)   # uncertain -> negative by default
    assert df.set_index("sample_id").loc["s50000004", "report"] == "Small left effusion."
    assert "s50000008" in set(df["sample_id"])             # AP-only, fractional StudyTime


def test_mimic_label_policy_and_time_parsing(tmp_path):
    cxr, ed = write_fixture(tmp_path)
    build(cxr, ed, tmp_path / "out", uncertain="positive")
    assert read_cohort(tmp_path / "out").set_index("sample_id").loc["s50000001", "Edema"] == 1
    t = study_datetime(pd.Series([21500101]), pd.Series([5012.5]))[0]
    assert str(t) == "2150-01-01 00:50:12.500000"
    assert extract_section("FINDINGS: a\n b.\nIMPRESSION: c.") == "a b."


def test_mimic_bad_inputs_name_the_file(tmp_path):
    cxr, ed = write_fixture(tmp_path)
    triage = ed / "ed" / "triage.csv.gz"
    pd.read_csv(triage).drop(columns=["acuity"]).to_csv(triage, index=False)
    with pytest.raises(MimicError, match=r"triage.csv.gz: missing column\(s\) \['acuity'\]"):
        build(cxr, ed, tmp_path / "out")
    triage.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(MimicError, match="triage.csv.gz: unreadable CSV"):
        build(cxr, ed, tmp_path / "out")
    triage.unlink()
    with pytest.raises(MimicError, match="triage.csv.gz: file not found"):
        build(cxr, ed, tmp_path / "out")


def test_cohort_validation_names_the_column(tmp_path, tiny_cohort):
    df = pd.read_parquet(tiny_cohort / "cohort.parquet")
    with pytest.raises(CohortError, match=r"missing column\(s\) \['report'\]"):
        validate(df.drop(columns=["report"]), "x.parquet")
    bad = df.copy()
    bad.loc[0, "acuity"] = 7
    with pytest.raises(CohortError, match=r"column 'acuity', row 0 \(sample_id '.+'\): 7 \(int\) "
                                         r"breaks the rule: integer 1-5"):
        validate(bad, "x.parquet")
    (tmp_path / "cohort.parquet").write_text("not parquet")
    with pytest.raises(CohortError, match="unreadable Parquet"):
        read_cohort(tmp_path)


# ---- features and pipeline ----------------------------------------------------------------------
def _count_builds(monkeypatch):
    calls = []
    real = features_mod.build_encoder

    def counting(spec):
        calls.append(spec)
        return real(spec)

    monkeypatch.setattr(features_mod, "build_encoder", counting)
    return calls


def test_feature_cache_hit_and_invalidation(tmp_path, tiny_cohort, monkeypatch):
    df = read_cohort(tiny_cohort).head(12)
    calls = _count_builds(monkeypatch)
    spec = EncoderSpec(weights=None, image_size=32)
    first = extract_features(df["image_path"], df["split"] == "train", spec, tmp_path, progress=False)
    again = extract_features(df["image_path"], df["split"] == "train", spec, tmp_path, progress=False)
    assert len(calls) == 1 and again.directory == first.directory
    log = extraction_log(tmp_path)  # the cache hit encoded nothing, so it logged nothing
    assert [(e["images"], e["fingerprint"]) for e in log] == [(12, first.directory.name)]
    assert first.features.dtype == np.float16 and first.features.shape == (12, 1, 1280)
    train = first.features[np.flatnonzero(df["split"] == "train")].astype(np.float32)
    assert abs(train.mean()) < 0.05  # standardised with training statistics
    assert first.meta["weights_used"] == "random" and "RANDOM" in first.meta["warning"]
    extract_features(df["image_path"], df["split"] == "train", EncoderSpec(weights=None, image_size=64),
                     tmp_path, progress=False)
    assert len(calls) == 2


def test_random_fallback_is_never_cached_as_imagenet(tmp_path, tiny_cohort, monkeypatch):
    """Offline, asking for ImageNet falls back to random weights: those features get the random
    key (an explicit --weights none reuses them), and the ImageNet key stays empty, so an online
    run later extracts real ImageNet features instead of reusing random ones."""
    import keras

    real = keras.applications.EfficientNetB0

    def no_network(*args, weights=None, **kw):  # as offline: the ImageNet download fails
        if weights == "imagenet":
            raise OSError("URL fetch failure: no network")
        return real(*args, weights=weights, **kw)

    no_network.__module__ = real.__module__  # where build_encoder finds preprocess_input
    monkeypatch.setattr(keras.applications, "EfficientNetB0", no_network)
    df = read_cohort(tiny_cohort).head(6)
    calls = _count_builds(monkeypatch)
    offline = extract_features(df["image_path"], df["split"] == "train", EncoderSpec(image_size=32),
                               tmp_path, progress=False)
    assert offline.meta["weights_used"] == "random"
    explicit = extract_features(df["image_path"], df["split"] == "train",
                                EncoderSpec(weights=None, image_size=32), tmp_path, progress=False)
    assert explicit.directory == offline.directory and len(extraction_log(tmp_path)) == 1
    images = features_mod.images_digest(df["image_path"])
    imagenet_key = features_mod.fingerprint(images, EncoderSpec(image_size=32), "imagenet")
    assert imagenet_key != offline.directory.name and not (tmp_path / imagenet_key).exists()
    again = extract_features(df["image_path"], df["split"] == "train", EncoderSpec(image_size=32),
                             tmp_path, progress=False)  # offline again: the recorded fallback, no encoder
    assert again.directory == offline.directory and len(extraction_log(tmp_path)) == 1
    assert "RANDOM" in again.meta["warning"] and len(calls) == 1
    keras_home = tmp_path / "keras-home"  # ImageNet weights arrive in Keras's cache: asked for again
    (keras_home / "models").mkdir(parents=True)
    (keras_home / "models" / "efficientnetb0_notop.h5").write_bytes(b"weights")
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    extract_features(df["image_path"], df["split"] == "train", EncoderSpec(image_size=32), tmp_path, progress=False)
    assert len(calls) == 2


QUIET_ENCODER_SCRIPT = """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="LOG %(name)s: %(message)s")
from data.features import EncoderSpec, build_encoder
print("USED", build_encoder(EncoderSpec(image_size=32))[2])
"""


@pytest.mark.slow
def test_a_quiet_first_build_keeps_tensorflow_and_the_failed_download_in_the_log(tmp_path):
    """A first, offline encoder build with TensorFlow asked to be quiet (as ``study/run.py``
    without --verbose): nothing of TensorFlow's C++ start-up (absl, oneDNN, the CUDA probe) and
    no "Downloading data from" reaches the terminal; both go to the log. The same build with
    ``TF_CPP_MIN_LOG_LEVEL=0`` shows what there is to keep out on this TensorFlow."""
    import os
    import subprocess
    import sys

    def build(level: str):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level, "KERAS_HOME": str(tmp_path / "keras"),
               "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # offline, surely
        return subprocess.run([sys.executable, "-c", QUIET_ENCODER_SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600, cwd=os.getcwd())

    loud, quiet = build("0"), build("3")
    assert "USED random" in quiet.stdout and "USED random" in loud.stdout, quiet.stderr[-2000:]
    printed = "\n".join(line for line in quiet.stdout.splitlines() if not line.startswith("LOG "))
    assert "Downloading data from" not in printed + quiet.stderr
    assert "Downloading data from" in loud.stdout + loud.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "cuda drivers"):
        assert noise not in quiet.stderr
        if noise in loud.stderr:  # this TensorFlow prints it: then the quiet run logged it
            assert noise in quiet.stdout
    assert quiet.stderr.strip() == "", quiet.stderr[-2000:]


def test_prepared_key_follows_the_preprocessing_rules(tiny_cohort, tiny_dataset, monkeypatch):
    from data import dataset as dataset_mod

    monkeypatch.setattr(dataset_mod, "rules_digest", lambda: "edited-rules")
    edited = prepare(tiny_cohort, encoder=TINY_ENCODER, progress=False,
                     preprocess=tiny_dataset.preprocessor.config)
    assert edited.directory != tiny_dataset.directory  # re-encoded, not the stale encodings


def test_corrupt_image_names_file_and_keeps_progress(tmp_path, tiny_cohort):
    df = read_cohort(tiny_cohort).head(10)
    paths = list(df["image_path"])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    paths[5] = str(bad)
    spec = EncoderSpec(weights=None, image_size=32)
    with pytest.raises(ImageError, match="broken.png: cannot read image"):
        extract_features(paths, df["split"] == "train", spec, tmp_path / "c", batch_size=2, progress=False)
    progress = json.loads(next((tmp_path / "c").glob("*/progress.json")).read_text())
    assert progress["done"] == 4  # two finished batches kept on disk for the next attempt
    cache = extract_features(paths, df["split"] == "train", spec, tmp_path / "c", batch_size=2,
                             on_bad_image="skip", progress=False)
    assert cache.skipped == [5] and cache.meta["skipped_files"] == [str(bad)]
    # the failed run logged the 4 images it encoded; the resumed one the other 5 readable ones
    assert [e["images"] for e in extraction_log(tmp_path / "c")] == [4, 5]


def test_prepared_dataset_arrays_and_tf_pipeline(tiny_dataset):
    train = tiny_dataset.split("train")
    n = len(train["sample_id"])
    assert train["image_features"].shape == (n, 4, 1280)
    assert train["vitals"].shape == (n, 12) and train["ordinal"].shape == (n, 4)
    assert train["findings"].shape == (n, 5) and train["report_ids"].shape == (n, 40)
    reloaded = PreparedDataset.load(tiny_dataset.directory)
    assert reloaded.preprocessor.to_dict() == tiny_dataset.preprocessor.to_dict()
    inputs, targets = next(iter(tiny_dataset.tf_dataset("train", 8)))
    assert tuple(inputs["image_features"].shape) == (8, 4, 1280)
    assert np.allclose(inputs["image_features"].numpy(), train["image_features"][:8], atol=1e-3)
    assert tuple(targets["findings"].shape) == (8, 5)


def test_prepare_reuses_everything_on_second_call(tiny_cohort, tiny_dataset, monkeypatch):
    calls = _count_builds(monkeypatch)
    again = prepare(tiny_cohort, encoder=TINY_ENCODER, progress=False,
                    preprocess=tiny_dataset.preprocessor.config)
    assert calls == [] and again.directory == tiny_dataset.directory


@pytest.mark.slow
def test_finding_signal_survives_random_weight_encoder(tmp_path):
    """A linear probe on cached random-weight features separates every finding (AUC >= 0.75)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    generate(tmp_path, n=240, seed=1, image_size=128)
    ds = prepare(tmp_path, encoder=EncoderSpec(weights=None, image_size=128), progress=False)
    tr, te = ds.split("train"), ds.split("validate")
    aucs = {}
    for j, finding in enumerate(FINDINGS):
        clf = LogisticRegression(C=0.1, max_iter=2000).fit(
            tr["image_features"].reshape(len(tr["findings"]), -1), tr["findings"][:, j])
        scores = clf.decision_function(te["image_features"].reshape(len(te["findings"]), -1))
        aucs[finding] = roc_auc_score(te["findings"][:, j], scores)
    print("linear probe ROC AUC:", {k: round(v, 3) for k, v in aucs.items()})
    assert min(aucs.values()) >= 0.75, aucs


def test_command_lines_write_and_prepare_a_cohort(tmp_path, capsys):
    from data import prepare as prepare_cli
    from data import synthetic

    synthetic.main(["--out", str(tmp_path), "--n", "20", "--image-size", "32"])
    assert "wrote 20 studies" in capsys.readouterr().out
    prepare_cli.main([str(tmp_path), "--weights", "none", "--image-size", "32"])
    out = capsys.readouterr().out
    assert "prepared dataset:" in out and "RANDOM weights" in out
    with pytest.raises(SystemExit) as stop:
        synthetic.main(["--help"])
    assert stop.value.code == 0  # help, not an error
    assert "--image-size" in capsys.readouterr().out


# bad inputs of the three cohort builders: (command, argv, the start of its one line); the docs'
# table of refused inputs runs these (docs/hooks.py)
REPORT_XML = ('<eCitation><uId id="CXR1"/><Abstract><AbstractText Label="FINDINGS">Heart size normal.</AbstractText>'
              '</Abstract><MeSH><major>normal</major></MeSH><parentImage id="CXR1_1_IM-0001-3001"/></eCitation>')
BUILDER_REFUSALS = [
    ("data.synthetic", ["--n", "5", "--out", "{tmp}/c"], "--n 5: must be an integer >= 10 (enough studies for three splits)"),
    ("data.synthetic", ["--image-size", "8", "--out", "{tmp}/c"], "--image-size 8: must be an integer >= 32 and <= 1024"),
    ("data.mimic", ["--mimic-cxr", "{tmp}/nowhere", "--mimic-ed", "{tmp}", "--out", "{tmp}/c"],
     "--mimic-cxr DIR/nowhere: folder not found"),
    ("data.mimic", ["--mimic-cxr", "{tmp}", "--mimic-ed", "{tmp}", "--out", "{tmp}/c"],
     "DIR/mimic-cxr-2.0.0-metadata.csv.gz: file not found (looked for mimic-cxr-2.0.0-metadata.csv.gz or "
     "mimic-cxr-2.0.0-metadata.csv, also under ed/)"),
    ("data.iu_xray", ["--source", "{tmp}/nowhere", "--out", "{tmp}/c"], "--source DIR/nowhere: folder not found"),
    ("data.iu_xray", ["--source", "{tmp}/other", "--out", "{tmp}/c"],
     "--source DIR/other: not a layout of the IU X-ray collection; expected ecgen-radiology/ beside the PNGs (Open-i)"),
    ("data.iu_xray", ["--source", "{tmp}/broken", "--out", "{tmp}/c"],
     "DIR/broken/ecgen-radiology/1.xml: not a readable report XML"),
    ("data.iu_xray", ["--source", "{tmp}/noimage", "--out", "{tmp}/c"],
     "DIR/noimage/CXR1_1_IM-0001-3001.png: image of report 1 not found (1 of the reports' chosen images are missing); "
     "download the images into DIR/noimage"),
    ("data.iu_xray", ["--source", "{tmp}/r2gen", "--out", "{tmp}/c"],
     "--labels mesh: the r2gen layout at DIR/r2gen carries no MeSH terms (R2Gen's annotation.json has none); "
     "use --labels labeler"),
    ("data.iu_xray", ["--source", "{tmp}/r2bad", "--out", "{tmp}/c", "--labels", "labeler"],
     "DIR/r2bad/annotation.json: expected R2Gen's annotation.json, an object with lists 'train', 'val' and 'test'"),
    ("data.iu_xray", ["--source", "{tmp}/kaggle", "--out", "{tmp}/c"],
     "DIR/kaggle/indiana_reports.csv: missing column(s) ['MeSH']"),
    ("data.iu_xray", ["--source", "{tmp}/noimage", "--out", "{tmp}/c", "--split-file", "{tmp}/nowhere.json"],
     "--split-file DIR/nowhere.json: file not found"),
    ("data.iu_xray", ["--source", "{tmp}/noimage", "--out", "{tmp}/other/notes.txt"],
     "--out DIR/other/notes.txt: a file, not a folder; name a cohort directory to write"),
    ("data.iu_xray", ["--source", "{tmp}/noimage", "--out", "{tmp}/c", "--labels", "chexpert"],
     "python -m data.iu_xray: argument --labels: invalid choice: 'chexpert' (choose from 'mesh', 'labeler')"),
]


def builder_refusal(command: str, argv: list, tmp: Path) -> str:
    """Write the bad inputs the cases name under ``tmp``, run the builder, return its one line."""
    import importlib

    for folder, files in {"broken/ecgen-radiology": {"1.xml": REPORT_XML[:60]},
                          "noimage/ecgen-radiology": {"1.xml": REPORT_XML},
                          "other": {"notes.txt": "not a collection"}, "r2gen/images/CXR1_IM-0001": {"0.png": ""},
                          "r2gen": {"annotation.json": '{"train": [{"id": "CXR1_IM-0001", "report": "Normal.", '
                                                       '"image_path": ["CXR1_IM-0001/0.png"], "split": "train"}]}'},
                          "r2bad/images": {}, "r2bad": {"annotation.json": "[1, 2]"},
                          "kaggle/images_normalized": {},
                          "kaggle": {"indiana_reports.csv": "uid,findings,impression,indication\n1,Normal.,,\n",
                                     "indiana_projections.csv": "uid,filename,projection\n"}}.items():
        (tmp / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (tmp / folder / name).write_text(text)
    try:
        importlib.import_module(command).main([a.format(tmp=tmp) for a in argv])
    except SystemExit as exc:
        return str(exc.code).replace(str(tmp), "DIR")
    return "(accepted: the case's test fails)"


@pytest.mark.parametrize("command, argv, message", BUILDER_REFUSALS)
def test_the_cohort_builders_refuse_bad_input_with_one_line(command, argv, message, tmp_path):
    said = builder_refusal(command, argv, tmp_path)
    assert said.startswith(message) and "\n" not in said, said
    assert not (tmp_path / "c").exists()  # nothing written


def test_a_cohort_without_acuity_vitals_or_icd_titles_prepares_and_says_so(tiny_cohort, tmp_path):
    """IU X-ray's shape: no acuity, vitals or ICD titles anywhere, some indications missing (a
    string column's missing value is pd.NA, which the text normaliser once choked on)."""
    from data.schema import VITALS, write_cohort

    df = read_cohort(tiny_cohort).assign(acuity=pd.NA, icd_title=pd.NA, **{v: np.nan for v in VITALS})
    df.loc[::3, "chief_complaint"] = pd.NA
    write_cohort(df, tmp_path / "c")
    ds = prepare(tmp_path / "c", encoder=TINY_ENCODER, progress=False)
    assert ds.meta["fields"] == {"vitals": False, "categoricals": True, "chief_complaint": True,
                                 "icd_title": False, "acuity": False}
    train = ds.split("train")
    assert (train["ordinal"] == 0).all() and (train["vitals"][:, len(VITALS):] == 1).all()  # all vitals missing
    assert (train["icd_title"] == 0).all() and normalize_field(pd.NA) == ""
