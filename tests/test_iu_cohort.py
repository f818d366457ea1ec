"""The IU X-ray cohort builder on the real reports: the three layouts written from the 3,955 XMLs of
torchxrayvision's wheel with placeholder images (tests/iu_fixture.py), each built, and checked
against what the raw files say (regular expressions and the wheel's DICOM metadata, not the
reader) and against each other; then a study on such a cohort, end to end."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.iu_reports import MESH_FINDINGS
from data.iu_xray import FRACTIONS, build
from data.schema import FINDINGS, read_cohort

from .iu_fixture import WHEEL, dicom_views, write_layouts
from .test_iu_xray import _raw, _section


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not WHEEL.exists():
        pytest.fail(f"{WHEEL} not found: `make test` fetches it (pip download --no-deps torchxrayvision==1.5.7)")
    root = tmp_path_factory.mktemp("iu")
    layouts = write_layouts(root / "layouts")
    annotation = layouts["r2gen"] / "annotation.json"
    reports = {"openi": build(layouts["openi"], root / "openi"), "kaggle": build(layouts["kaggle"], root / "kaggle"),
               "r2gen": build(layouts["r2gen"], root / "r2gen", labels="labeler"),
               "openi_split": build(layouts["openi"], root / "openi_split", split_file=annotation),
               "kaggle_split": build(layouts["kaggle"], root / "kaggle_split", split_file=annotation)}
    cohorts = {name: read_cohort(root / name).set_index("sample_id") for name in reports}
    return layouts, reports, cohorts


@pytest.fixture(scope="module")
def raw(built):
    """Per report number, from the XML text itself: the text to generate, the indication, the
    listed image ids and the MeSH-derived labels."""
    layouts, _, _ = built
    out = {}
    for uid, text in _raw(layouts["openi"] / "ecgen-radiology").items():
        majors = {m.split("/")[0].strip() for m in re.findall(r"<major>(.*?)</major>", text, re.S)}
        out[uid] = {"report": _section(text, "FINDINGS") or _section(text, "IMPRESSION"),
                    "indication": _section(text, "INDICATION"),
                    "images": re.findall(r'<parentImage id="([^"]+)"', text),
                    **{f: int(any(h in majors for h, g in MESH_FINDINGS.items() if g == f)) for f in FINDINGS}}
    return out


def test_every_report_is_kept_or_dropped_with_its_reason(built, raw):
    _, reports, cohorts = built
    no_text = [u for u, r in raw.items() if not r["report"]]
    no_image = [u for u, r in raw.items() if r["report"] and not r["images"]]
    kept = sorted(set(raw) - set(no_text) - set(no_image))
    assert (len(raw), len(no_text), len(no_image), len(kept)) == (3955, 28, 101, 3826)  # 3 lack both
    for name in ("openi", "kaggle"):
        report = reports[name]
        assert report["reports_read"] == 3955
        assert report["dropped"] == {"no_findings_or_impression": 28, "no_image": len(no_image)}
        assert report["selected"] + sum(report["dropped"].values()) == 3955
        assert sorted(int(s[3:]) for s in cohorts[name].index) == kept


def test_text_indication_and_labels_come_from_the_xml(built, raw):
    _, _, cohorts = built
    for name in ("openi", "kaggle"):
        cohort = cohorts[name]
        uids = [int(s[3:]) for s in cohort.index]
        assert list(cohort["report"]) == [raw[u]["report"] for u in uids]
        assert [c if isinstance(c, str) else "" for c in cohort["chief_complaint"]] == [raw[u]["indication"] for u in uids]
        for finding in FINDINGS:
            assert list(cohort[finding]) == [raw[u][finding] for u in uids], (name, finding)
        assert cohort["acuity"].isna().all() and cohort[["o2sat", "gender", "icd_title"]].isna().all().all()


def test_the_frontal_image_is_the_first_listed_pa_or_ap_view(built, raw):
    _, reports, cohorts = built
    views = dicom_views()
    view = dict(zip(views["imageid"], views["View Position"].fillna("").str.upper()))
    expected = {}
    for uid, r in raw.items():
        frontal = [i for i in r["images"] if view.get(i) in ("PA", "AP")]
        expected[f"CXR{uid}"] = (frontal or r["images"] or [None])[0]
    openi = cohorts["openi"]
    assert [Path(p).stem for p in openi["image_path"]] == [expected[s] for s in openi.index]
    by_rule = sum(1 for s in openi.index if expected[s] != raw[int(s[3:])]["images"][0])
    assert by_rule > 0 and reports["openi"]["frontal_rule"]["view_position"] >= by_rule
    # Kaggle's projection table names the same views: the same file (one inode, hard-linked)
    kaggle = cohorts["kaggle"]
    assert [os.stat(p).st_ino for p in kaggle["image_path"]] == [os.stat(p).st_ino for p in openi["image_path"]]


def test_r2gen_layout_agrees_with_the_others_given_its_split_file(built, raw):
    layouts, reports, cohorts = built
    annotation = json.loads((layouts["r2gen"] / "annotation.json").read_text())
    split = {int(e["id"][3:].split("_")[0]): {"val": "validate"}.get(k, k) for k, es in annotation.items() for e in es}
    r2gen = cohorts["r2gen"]
    assert sorted(int(s[3:]) for s in r2gen.index) == sorted(split)
    for name in ("openi_split", "kaggle_split"):
        cohort = cohorts[name]
        assert list(cohort.index) == list(r2gen.index) and list(cohort["report"]) == list(r2gen["report"])
        assert list(cohort["split"]) == list(r2gen["split"]) == [split[int(s[3:])] for s in r2gen.index]
        assert reports[name]["dropped"]["not_in_split_file"] == reports["openi"]["selected"] - len(split)
    # R2Gen lists no views: its first image is the report's first listed one
    first = {f"CXR{u}": r["images"][0] for u, r in raw.items() if r["images"]}
    openi_png = Path(cohorts["openi"]["image_path"].iloc[0]).parent
    assert [os.stat(p).st_ino for p in r2gen["image_path"]] == [os.stat(openi_png / f"{first[s]}.png").st_ino
                                                                for s in r2gen.index]
    assert r2gen["chief_complaint"].isna().all()  # R2Gen's file has no indication


def test_r2gen_labels_are_the_labelers_reading_of_its_text(built):
    from study.agreement import labeler_findings

    _, reports, cohorts = built
    r2gen = cohorts["r2gen"]
    assert (r2gen[list(FINDINGS)].to_numpy() == labeler_findings(list(r2gen["report"])).to_numpy()).all()
    assert reports["r2gen"]["labels"] == "the labeler (data.labeler) on R2Gen's report text"


def test_splits_are_by_patient_in_the_stated_proportions(built):
    _, _, cohorts = built
    openi, kaggle = cohorts["openi"], cohorts["kaggle"]
    assert list(openi["split"]) == list(kaggle["split"])  # same reports, same seed
    assert openi.groupby("subject_id")["split"].nunique().max() == 1
    for split, fraction in FRACTIONS.items():  # one study per patient: within one of the target
        assert abs((openi["split"] == split).sum() - fraction * len(openi)) <= 1, split


def test_kaggle_images_one_folder_down_as_the_download_unpacks(tmp_path):
    layouts = write_layouts(tmp_path / "layouts", keep=30)
    build(layouts["kaggle"], tmp_path / "flat")
    flat = [os.stat(p).st_ino for p in read_cohort(tmp_path / "flat")["image_path"]]
    (layouts["kaggle"] / "images").mkdir()
    (layouts["kaggle"] / "images_normalized").rename(layouts["kaggle"] / "images" / "images_normalized")
    build(layouts["kaggle"], tmp_path / "nested")
    assert len(flat) > 20 and flat == [os.stat(p).st_ino for p in read_cohort(tmp_path / "nested")["image_path"]]


@pytest.mark.slow
def test_a_smoke_study_runs_on_an_iu_cohort_without_its_oc_task(tmp_path):
    from study.run import run_study

    layouts = write_layouts(tmp_path / "layouts", keep=300)
    build(layouts["openi"], tmp_path / "cohort")
    exp, status = run_study(["--data", "iu", "--data-dir", str(tmp_path / "cohort"), "--search-space", "smoke",
                             "--num-samples", "2", "--storage", str(tmp_path / "store"), "--name", "iu",
                             "--image-size", "32", "--weights", "none"])  # two trials at once: the whole smoke
    assert status == 0                                                     # space is run for the docs
    trials = pd.read_parquet(exp / "trials.parquet")
    assert (trials["status"] == "TERMINATED").all() and len(trials) == 2
    assert trials[["val_rouge_l", "val_ml_f1", "test_rouge_l"]].notna().all().all()
    assert trials["val_oc_accuracy"].isna().all() and (trials["param_beta"] == 0).all()
    assert np.allclose(trials["param_alpha"] + trials["param_gamma"], 1.0)
    line = json.loads((exp / "study.json").read_text())["search_space"]["tasks_removed"]
    assert line == (f"the cohort {tmp_path / 'cohort'} has no acuity: task oc removed (its head, loss term and "
                    f"objective(s) val_oc_accuracy)")
    assert line in (exp / "summary.md").read_text()
