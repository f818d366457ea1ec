"""The IU X-ray collection in the three layouts it is downloaded in, read into one table.

* **Open-i** (``openi``): Open-i's two archives extracted into one folder, the report XMLs in
  ``ecgen-radiology/`` (``NLMCXR_reports.tgz``) and the images ``<image id>.png``
  (``NLMCXR_png.tgz``) beside them, in any folder below. With the DICOM metadata
  (``nlmcxr_dicom_metadata.csv.gz`` or ``.csv``, as torchxrayvision ships it) in the folder, the
  frontal image is the first the report lists whose View Position is PA or AP.
* **R2Gen** (``r2gen``): ``annotation.json`` (``{"train" | "val" | "test": [{"id", "report",
  "image_path", "split"}]}``) with ``images/<id>/0.png, 1.png``, as R2Gen (Chen et al., EMNLP
  2020) distributes it: its own report text and split, no MeSH terms and no indication.
* **Kaggle** (``kaggle``): ``indiana_reports.csv`` (uid, MeSH, indication, findings, impression,
  ...) and ``indiana_projections.csv`` (uid, filename, projection) with ``images_normalized/``
  (or ``images/images_normalized/``, as the Kaggle download unpacks).

:func:`read_layout` gives one row per report whatever the layout (:data:`TABLE_COLUMNS`); a
layout is recognised by those files (:func:`detect_layout`, in the order above reversed: a
folder holding ``annotation.json`` is read as R2Gen's even when XMLs sit beside it).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from .iu_reports import REPORTS_DIR, IUError, read_reports

# one row per report: its number; the frontal image (path, or None when it lists none) and the
# rule that chose it; the text to generate (FINDINGS, else IMPRESSION, else None); what the
# labeler reads (FINDINGS and IMPRESSION together, what the curators indexed); the INDICATION;
# the MeSH terms (None where the layout has none); the layout's own split (R2Gen's, else None)
TABLE_COLUMNS = ("uid", "frontal", "view_rule", "report", "labelled_text", "indication", "mesh", "split")
FRONTAL_VIEWS = ("PA", "AP")
R2GEN_SPLITS = {"train": "train", "val": "validate", "test": "test"}
DICOM_METADATA = ("nlmcxr_dicom_metadata.csv.gz", "nlmcxr_dicom_metadata.csv")
KAGGLE_FILES = {"indiana_reports.csv": ["uid", "MeSH", "indication", "findings", "impression"],
                "indiana_projections.csv": ["uid", "filename", "projection"]}


def detect_layout(source: Path) -> str:
    """Which layout ``source`` holds, from the files that mark it; :class:`IUError` if none."""
    if not source.is_dir():
        raise IUError(f"--source {source}: folder not found")
    if (source / "annotation.json").is_file():
        return "r2gen"
    if (source / "indiana_reports.csv").is_file():
        return "kaggle"
    if (source / REPORTS_DIR).is_dir() or any(source.glob("*.xml")):
        return "openi"
    raise IUError(f"--source {source}: not a layout of the IU X-ray collection; expected {REPORTS_DIR}/ beside "
                  f"the PNGs (Open-i), annotation.json with images/ (R2Gen) or indiana_reports.csv with "
                  f"indiana_projections.csv and images_normalized/ (Kaggle)")


def read_layout(source: Path, layout: str) -> pd.DataFrame:
    """Every report of ``source`` as :data:`TABLE_COLUMNS`, by report number; raises
    :class:`IUError` naming the file for a malformed input or a chosen image that is missing."""
    table = {"openi": _openi, "r2gen": _r2gen, "kaggle": _kaggle}[layout](source)
    table = pd.DataFrame(table, columns=list(TABLE_COLUMNS)).sort_values("uid").reset_index(drop=True)
    repeated = table["uid"].duplicated()
    if repeated.any():
        raise IUError(f"--source {source}: report {table['uid'][repeated].iloc[0]} appears twice; one entry per report")
    missing = table["frontal"].map(lambda p: isinstance(p, str) and not Path(p).is_file())
    if missing.any():
        first = table[missing].iloc[0]
        raise IUError(f"{first['frontal']}: image of report {first['uid']} not found ({int(missing.sum())} of the "
                      f"reports' chosen images are missing); download the images into {source}")
    return table


def read_split_file(path: Path) -> dict[int, str]:
    """R2Gen's ``annotation.json``: report number -> split (``val`` read as ``validate``)."""
    return {entry["uid"]: entry["split"] for entry in _annotation(path)}


def _text(value) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _row(uid, frontal, rule, findings, impression, indication, mesh, split=None) -> dict:
    findings, impression = _text(findings), _text(impression)
    return {"uid": int(uid), "frontal": None if frontal is None else str(frontal), "view_rule": rule,
            "report": findings or impression or None, "labelled_text": " ".join(filter(None, (findings, impression))),
            "indication": _text(indication) or None, "mesh": mesh, "split": split}


def _first_frontal(images: list[str], frontal: dict, rule: str) -> tuple[str | None, str | None]:
    """The first listed image that ``frontal`` marks as a frontal view (the rule named ``rule``),
    else the first listed (``first_listed``); ``(None, None)`` for a report without images."""
    chosen = next((i for i in images if frontal.get(i)), None)
    if chosen is not None:
        return chosen, rule
    return (images[0], "first_listed") if images else (None, None)


def _openi(source: Path) -> list[dict]:
    reports = read_reports(source)
    pngs = {p.stem: p.resolve() for p in source.rglob("*.png")}
    frontal = _dicom_frontal(source)
    rows = []
    for r in reports:
        image, rule = _first_frontal(r.images, frontal, "view_position")
        path = pngs.get(image, source / f"{image}.png") if image else None
        rows.append(_row(r.uid, path, rule, r.sections["FINDINGS"], r.sections["IMPRESSION"],
                         r.sections["INDICATION"], list(r.mesh)))
    return rows


def _dicom_frontal(source: Path) -> dict:
    """Image id -> whether its DICOM View Position is frontal (PA or AP), from the metadata file
    when the folder holds one (else empty: every report takes its first listed image)."""
    path = next((source / name for name in DICOM_METADATA if (source / name).is_file()), None)
    if path is None:
        return {}
    try:
        table = pd.read_csv(path, usecols=["imageid", "View Position"], dtype=str)
    except ValueError as exc:  # pandas names the missing column
        raise IUError(f"{path}: expected the columns imageid and View Position ({exc})") from None
    return dict(zip(table["imageid"], table["View Position"].str.upper().isin(FRONTAL_VIEWS)))


def _annotation(path: Path) -> list[dict]:
    """R2Gen's entries with their report number and split, checked."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IUError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not set(data) & set(R2GEN_SPLITS):
        raise IUError(f"{path}: expected R2Gen's annotation.json, an object with lists 'train', 'val' and 'test'")
    entries = []
    for key, split in R2GEN_SPLITS.items():
        for i, entry in enumerate(data.get(key, [])):
            found = re.match(r"CXR(\d+)_", str(entry.get("id", ""))) if isinstance(entry, dict) else None
            if found is None or not isinstance(entry.get("image_path"), list):
                raise IUError(f"{path}: {key}[{i}]: expected an entry with an id 'CXR<number>_...' and an image_path "
                              f"list, got {str(entry)[:80]!r}")
            entries.append({**entry, "uid": int(found.group(1)), "split": split})
    return entries


def _r2gen(source: Path) -> list[dict]:
    images = source / "images"
    if not images.is_dir():
        raise IUError(f"{images}: folder not found; R2Gen's layout holds annotation.json beside images/")
    rows = []
    for entry in _annotation(source / "annotation.json"):
        first = entry["image_path"][0] if entry["image_path"] else None
        rows.append(_row(entry["uid"], (images / first).resolve() if first else None, "r2gen_first" if first else None,
                         entry.get("report"), "", None, None, entry["split"]))
    return rows


def _kaggle(source: Path) -> list[dict]:
    tables = {}
    for name, columns in KAGGLE_FILES.items():
        path = source / name
        try:
            tables[name] = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise IUError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
        missing = [c for c in columns if c not in tables[name].columns]
        if missing:
            raise IUError(f"{path}: missing column(s) {missing}; found {list(tables[name].columns)}")
    images = next((f for f in (source / "images_normalized", source / "images" / "images_normalized") if f.is_dir()), None)
    if images is None:
        raise IUError(f"{source / 'images_normalized'}: folder not found (nor images/images_normalized); Kaggle's "
                      f"layout holds the two CSVs beside images_normalized/")
    projections = tables["indiana_projections.csv"]
    listed = projections.groupby("uid", sort=False)
    rows = []
    for r in tables["indiana_reports.csv"].itertuples(index=False):
        views = listed.get_group(r.uid) if r.uid in listed.groups else projections.iloc[:0]
        frontal = dict(zip(views["filename"], views["projection"].astype(str).str.lower() == "frontal"))
        image, rule = _first_frontal(list(views["filename"]), frontal, "projection_table")
        mesh = [t.strip() for t in r.MeSH.split(";") if t.strip()] if isinstance(r.MeSH, str) else []
        rows.append(_row(r.uid, (images / image).resolve() if image else None, rule, r.findings, r.impression,
                         r.indication, mesh))
    return rows
