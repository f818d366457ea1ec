"""Writes a tiny MIMIC-CXR-JPG + MIMIC-IV-ED tree in the real file layout and column names.

Awkward cases planted (with the build report's expected drop counts):
study 50000002 lies in two overlapping stays (ambiguous_ed_stay), 50000003 in none (no_ed_stay),
50000004 has no FINDINGS but an IMPRESSION (kept), 50000005 has neither
(no_findings_or_impression), 50000006's stay has no acuity (missing_acuity), 50000007 has only a
lateral view (no_frontal_image), 50000008 is AP-only with StudyTime 5012.5 (00:50:12.5, kept).
Subjects 10000100+ are ordinary kept studies so that three splits can be formed.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
EXPECTED_DROPS = {"no_frontal_image": 1, "no_ed_stay": 1, "ambiguous_ed_stay": 1,
                  "missing_acuity": 1, "no_findings_or_impression": 1}
N_ORDINARY = 24
EXPECTED_KEPT = 3 + N_ORDINARY  # 50000001, 50000004, 50000008 + ordinary


def write_fixture(root: Path, gzip: bool = True) -> tuple[Path, Path]:
    cxr, ed = root / "mimic-cxr-jpg", root / "mimic-iv-ed"
    (ed / "ed").mkdir(parents=True)
    cxr.mkdir(parents=True)
    meta, stays, triage, dx, labels = [], [], [], [], []
    reports = {}
    std_report = ("EXAMINATION: CHEST (PA AND LAT)\n\nINDICATION: sob\n\nFINDINGS: \n The lungs are "
                  "clear.  No pleural\n effusion.\n\nIMPRESSION: \n No acute process.\n")

    def study(subject, study_id, views, date="21500101", time=103015.123, stay=None,
              acuity=3, report=std_report, label_row=None):
        for k, v in enumerate(views):
            meta.append(dict(dicom_id=f"d{study_id}-{k}", subject_id=subject, study_id=study_id,
                             PerformedProcedureStepDescription="CHEST (PA AND LAT)",
                             ViewPosition=v, Rows=64, Columns=64, StudyDate=int(date),
                             StudyTime=time))
        for s in stay or []:
            stays.append(dict(subject_id=subject, hadm_id=np.nan, stay_id=s[0], intime=s[1],
                              outtime=s[2], gender="F" if subject % 2 else "M", race="WHITE",
                              arrival_transport="WALK IN", disposition="HOME"))
            triage.append(dict(subject_id=subject, stay_id=s[0], temperature=98.6, heartrate=88,
                               resprate=18, o2sat=97, sbp=120, dbp=80, pain="3",
                               acuity=acuity, chiefcomplaint="SOB"))
            dx.append(dict(subject_id=subject, stay_id=s[0], seq_num=2, icd_code="R05",
                           icd_version=10, icd_title="COUGH"))
            dx.append(dict(subject_id=subject, stay_id=s[0], seq_num=1, icd_code="R0602",
                           icd_version=10, icd_title="SHORTNESS OF BREATH"))
        row = dict(subject_id=subject, study_id=study_id, **{f: np.nan for f in FINDINGS})
        row.update(label_row or {})
        labels.append(row)
        reports[(subject, study_id)] = report

    day = ("2150-01-01 08:00:00", "2150-01-01 14:00:00")
    study(10000001, 50000001, ["PA", "LATERAL", "AP"], stay=[(30000001, *day)],
          label_row={"Cardiomegaly": 1, "Edema": -1})
    study(10000002, 50000002, ["PA"], stay=[(30000002, *day),
                                            (30000003, "2150-01-01 09:00:00", "2150-01-01 12:00:00")])
    study(10000003, 50000003, ["PA"], date="21500301", stay=[(30000004, *day)])
    study(10000004, 50000004, ["PA"], stay=[(30000005, *day)],
          report="FINAL REPORT\nIMPRESSION: \n Small left effusion.\n")
    study(10000005, 50000005, ["PA"], stay=[(30000006, *day)], report="FINAL REPORT\n Comparison: none.\n")
    study(10000006, 50000006, ["PA"], stay=[(30000007, *day)], acuity=np.nan)
    study(10000007, 50000007, ["LATERAL"], stay=[(30000008, *day)])
    study(10000008, 50000008, ["AP"], time=5012.5,
          stay=[(30000009, "2149-12-31 22:00:00", "2150-01-01 03:00:00")],
          label_row={"Pleural Effusion": 1, "Atelectasis": 0})
    for i in range(N_ORDINARY):
        subject = 10000100 + i // 2  # two studies per subject: splits must keep them together
        t = f"2150-02-{1 + i:02d}"
        study(subject, 50000100 + i, ["PA"], date=t.replace("-", ""),
              stay=[(30000100 + i, f"{t} 08:00:00", f"{t} 14:00:00")],
              label_row={FINDINGS[i % 5]: 1} if i % 3 else {})

    ext = ".csv.gz" if gzip else ".csv"
    pd.DataFrame(meta).to_csv(cxr / f"mimic-cxr-2.0.0-metadata{ext}", index=False)
    pd.DataFrame(labels).to_csv(cxr / f"mimic-cxr-2.0.0-chexpert{ext}", index=False)
    pd.DataFrame([dict(dicom_id=m["dicom_id"], study_id=m["study_id"], subject_id=m["subject_id"],
                       split="train") for m in meta]).to_csv(cxr / f"mimic-cxr-2.0.0-split{ext}", index=False)
    pd.DataFrame(stays).to_csv(ed / "ed" / f"edstays{ext}", index=False)
    pd.DataFrame(triage).to_csv(ed / "ed" / f"triage{ext}", index=False)
    pd.DataFrame(dx).to_csv(ed / "ed" / f"diagnosis{ext}", index=False)
    for (subject, study_id), text in reports.items():
        folder = cxr / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
        img_dir = folder / f"s{study_id}"
        img_dir.mkdir(parents=True, exist_ok=True)
        (folder / f"s{study_id}.txt").write_text(text)
    for m in meta:
        s = str(m["subject_id"])
        path = cxr / "files" / f"p{s[:2]}" / f"p{s}" / f"s{m['study_id']}" / f"{m['dicom_id']}.jpg"
        Image.fromarray(np.full((64, 64), 100, np.uint8)).save(path)
    return cxr, ed
