"""The embedded synthetic cohort: a seeded generator that writes a cohort directory in exactly the
format the MIMIC builder writes, with real signal linking images, vitals, text and labels.

Clinical structure (so the study's trade-offs mean something):

* Two latent conditions drive most findings: heart failure (cardiomegaly, edema, effusion) and
  pneumonia (consolidation, some effusion). Atelectasis appears on its own and beside effusions.
  Most studies are normal, as in MIMIC, so the balanced subset matters.
* Vitals follow the conditions (hypoxia and tachypnoea with edema or consolidation, fever with
  consolidation, hypertension with heart failure); about 5 % of each vital is missing and about
  1 % is implausible (a 67 degree temperature, a heart rate of 0) for the cleaning step to catch.
* Chief complaints use ED shorthand ("sob", "cp", "s/p fall"); ICD titles follow the condition.
* Acuity (1 = most urgent, as in MIMIC-IV-ED) worsens with the findings and abnormal vitals.
* Reports are findings sections that agree with the labels, in varied wording and order; normal
  reports draw from few templates, so exact duplicates occur across patients as in MIMIC.
* Images are chest-like: dark lungs, bright mediastinum, heart shadow and diaphragm, and each
  finding changes what is drawn: a wider heart (cardiomegaly), a basal opacity with a meniscus
  (effusion), diffuse perihilar haze (edema), a focal dense patch (consolidation) and a thin linear
  band (atelectasis), with noise and variation in position and contrast.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .cohort import balanced_subset, split_by_patient
from .schema import FINDINGS, write_cohort

GENDERS = ["F", "M"]
RACES = ["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN - CHINESE",
         "OTHER", "UNKNOWN", "UNABLE TO OBTAIN"]
RACE_P = [0.55, 0.2, 0.08, 0.05, 0.05, 0.05, 0.02]

COMPLAINTS = {
    "heart_failure": ["sob", "doe", "SOB, LE swelling", "chf exacerbation", "sob..", "dyspnea"],
    "pneumonia": ["fever", "cough", "sob, fever", "cough/fever", "pna", "FEVER, COUGH"],
    "other": ["cp", "s/p fall", "abd pain", "syncope", "n/v", "etoh", "ams", "ha", "chest pain",
              "dizziness", "CP..", "s/p MVC"],
}
ICD_TITLES = {
    "heart_failure": ["Acute on chronic diastolic (congestive) heart failure",
                      "Congestive heart failure, unspecified",
                      "Hypertensive heart disease with heart failure"],
    "pneumonia": ["Pneumonia, unspecified organism", "Fever, unspecified",
                  "Lobar pneumonia, unspecified organism"],
    "effusion": ["Pleural effusion, not elsewhere classified"],
    "other": ["Chest pain, unspecified", "Other chest pain", "Syncope and collapse",
              "Unspecified fall, initial encounter", "Abdominal pain, unspecified",
              "Dizziness and giddiness", "Alcohol abuse, uncomplicated"],
}
SENTENCES = {
    "Cardiomegaly": (["The heart is enlarged.", "Moderate cardiomegaly is present.",
                      "Heart size is enlarged.", "There is cardiomegaly."],
                     ["The heart size is normal.", "Heart size is within normal limits.",
                      "The cardiomediastinal silhouette is normal."]),
    "Pleural Effusion": (["There is a small {side} pleural effusion.",
                          "A moderate {side} pleural effusion is seen.",
                          "Small {side} pleural effusion with adjacent opacity."],
                         ["No pleural effusion or pneumothorax.", "There is no pleural effusion.",
                          "No pleural effusion is seen."]),
    "Edema": (["There is mild pulmonary edema.", "Mild interstitial edema is present.",
               "Findings are consistent with vascular congestion and mild pulmonary edema."],
              ["No pulmonary edema.", "There is no evidence of pulmonary edema."]),
    "Consolidation": (["There is a focal consolidation in the {side} lower lobe.",
                       "Patchy consolidation in the {side} lung, concerning for pneumonia.",
                       "{Side} lower lobe consolidation is present."],
                      ["No focal consolidation.", "The lungs are clear without focal consolidation."]),
    "Atelectasis": (["Linear atelectasis at the {side} base.", "Mild {side} basilar atelectasis.",
                     "There is {side} basal atelectasis."],
                    []),  # radiologists rarely write "no atelectasis"
}


def sample_records(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` studies (no images yet): conditions, findings, vitals, text, acuity, report."""
    hf = rng.random(n) < 0.12
    pna = ~hf & (rng.random(n) < 0.11)
    f = {
        "Cardiomegaly": (rng.random(n) < np.where(hf, 0.8, 0.05)),
        "Edema": (rng.random(n) < np.where(hf, 0.65, 0.015)),
        "Consolidation": (rng.random(n) < np.where(pna, 0.9, 0.015)),
    }
    f["Pleural Effusion"] = rng.random(n) < np.where(hf, 0.5, np.where(pna, 0.3, 0.03))
    f["Atelectasis"] = rng.random(n) < np.where(f["Pleural Effusion"], 0.35, 0.07)
    df = pd.DataFrame({k: v.astype(np.int8) for k, v in f.items()})[list(FINDINGS)]
    edema, cons = df["Edema"].to_numpy(), df["Consolidation"].to_numpy()

    vitals = pd.DataFrame({
        "o2sat": np.minimum(100, 98 - 4.5 * edema - 4 * cons + rng.normal(0, 1.5, n)).round(),
        "heartrate": (80 + 12 * edema + 16 * cons + rng.normal(0, 12, n)).round(),
        "resprate": (16 + 5 * edema + 4 * cons + rng.normal(0, 2, n)).round(),
        "sbp": (128 + 18 * hf + rng.normal(0, 18, n)).round(),
        "dbp": (74 + 9 * hf + rng.normal(0, 10, n)).round(),
        "temperature": (98.1 + 2.3 * cons + rng.normal(0, 0.6, n)).round(1),
    })
    implausible = {"o2sat": 0, "heartrate": 0, "resprate": 0, "sbp": 999, "dbp": 0,
                   "temperature": 67.0}
    for col, bad in implausible.items():
        vitals.loc[rng.random(n) < 0.01, col] = bad
        vitals.loc[rng.random(n) < (0.08 if col == "temperature" else 0.05), col] = np.nan
    df = pd.concat([vitals, df], axis=1)

    condition = np.where(hf, "heart_failure", np.where(pna, "pneumonia", "other"))
    df["chief_complaint"] = [rng.choice(COMPLAINTS[c]) for c in condition]
    icd_key = np.where((condition == "other") & (df["Pleural Effusion"] == 1), "effusion", condition)
    df["icd_title"] = [rng.choice(ICD_TITLES[c]) for c in icd_key]
    df["gender"] = rng.choice(GENDERS, n)
    df["ethnicity"] = rng.choice(RACES, n, p=RACE_P)

    score = (0.9 + 0.7 * df[list(FINDINGS)].sum(axis=1) + (df["o2sat"] < 92) + 0.7 * (df["resprate"] > 22)
             + 0.5 * (df["temperature"] > 100.4) + rng.normal(0, 0.5, n))
    df["acuity"] = 5 - np.digitize(score, [0.25, 0.6, 1.8, 3.0])  # 1 = most urgent

    df["side"] = rng.choice(["left", "right"], n)
    df["report"] = [write_report(row, rng) for row in df.to_dict("records")]
    return df


def write_report(row, rng: np.random.Generator) -> str:
    """A findings section that agrees with the row's labels; wording and order vary."""
    labels = {f: row[f] for f in FINDINGS}
    sentences = []
    for finding, (positive, negative) in SENTENCES.items():
        options = positive if labels[finding] else negative
        if options:
            sentences.append(rng.choice(options).format(side=row["side"], Side=row["side"].capitalize()))
    if not any(labels.values()) and rng.random() < 0.6:
        sentences = ["The lungs are clear.", "No pleural effusion or pneumothorax.",
                     "The cardiomediastinal silhouette is normal."]  # the classic duplicate report
    elif rng.random() < 0.5:
        rng.shuffle(sentences)
    if not labels["Pleural Effusion"] and "pneumothorax" not in " ".join(sentences):
        sentences.append("No pneumothorax.")
    return " ".join(sentences)


def render_image(row, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grayscale chest-like image (uint8, size x size) whose drawing follows the findings."""
    y, x = np.mgrid[0:size, 0:size] / size
    dx, dy = rng.normal(0, 0.02, 2)                    # patient position
    x, y = x - dx, y - dy
    img = np.full((size, size), 0.15)
    img[((x - 0.5) / 0.46) ** 2 + ((y - 0.55) / 0.55) ** 2 < 1] = 0.6          # body
    lungs = {}
    for side, cx in (("right", 0.3), ("left", 0.7)):  # patient's right is image left
        lungs[side] = ((x - cx) / 0.17) ** 2 + ((y - 0.45) / 0.3) ** 2 < 1
        img[lungs[side]] = 0.22
    img[(abs(x - 0.5) < 0.06) & (y < 0.75)] = 0.75                            # mediastinum/spine
    heart_w = 0.2 if row["Cardiomegaly"] else 0.13
    heart = ((x - 0.54) / heart_w) ** 2 + ((y - 0.62) / 0.11) ** 2 < 1
    img[heart] = 0.8                                                          # heart shadow
    img[y > 0.74 + 0.04 * np.cos((x - 0.5) * 6)] = 0.7                        # diaphragm domes

    side_cx = 0.3 if row["side"] == "right" else 0.7
    lung = lungs[row["side"]]
    if row["Edema"]:   # diffuse, perihilar-weighted haze over both lungs
        both = (lungs["left"] | lungs["right"]) & ~heart
        haze = 0.22 * np.exp(-((x - 0.5) ** 2) / 0.05) + 0.06 * rng.random((size, size))
        img[both] += haze[both]
    if row["Consolidation"]:   # focal dense patch
        cy = rng.uniform(0.45, 0.6)
        blob = np.exp(-(((x - side_cx) ** 2 + (y - cy) ** 2) / 0.004))
        img += 0.5 * blob * lung
    if row["Atelectasis"]:   # thin linear band near the base
        yb = rng.uniform(0.6, 0.66) + 0.15 * (x - side_cx) * rng.uniform(-1, 1)
        img[lung & (abs(y - yb) < 0.02)] += 0.5
    if row["Pleural Effusion"]:   # basal opacity, meniscus rising laterally
        lateral = side_cx + (-0.17 if row["side"] == "right" else 0.17)
        meniscus = 0.66 - 5.0 * np.clip((x - side_cx) * (lateral - side_cx), -0.01, None)
        img[lung & (y > meniscus)] = 0.68
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-0.05, 0.05)
    img = (img - 0.4) * contrast + 0.4 + brightness + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def generate(out_dir: str | Path, *, n: int = 800, seed: int = 0, image_size: int = 224) -> Path:
    """Write a synthetic cohort directory: ``cohort.parquet`` and ``images/*.png``.

    A pool three times the requested size is drawn, then the paper's balanced subset and patient
    splits are applied, exactly as for MIMIC. Same arguments, same bytes.
    """
    if n < 10:
        raise ValueError(f"n must be at least 10 (enough for three splits), got {n}")
    rng = np.random.default_rng(seed)
    pool = sample_records(3 * n, rng)
    per_subject = rng.integers(1, 4, len(pool))          # 1-3 studies per patient
    pool["subject_id"] = 10_000_000 + np.repeat(np.arange(len(pool)), per_subject)[: len(pool)]
    pool["sample_id"] = [f"syn{seed}-{i:06d}" for i in range(len(pool))]
    df = balanced_subset(pool, n, seed=seed)
    df["split"] = split_by_patient(df, seed=seed)

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for row in df.to_dict("records"):
        image_rng = np.random.default_rng([seed, int(row["sample_id"].split("-")[1])])
        path = Path("images") / f"{row['sample_id']}.png"
        Image.fromarray(render_image(row, image_size, image_rng)).save(out_dir / path)
        paths.append(str(path))
    df["image_path"] = paths
    return write_cohort(df, out_dir)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="cohort directory to write")
    parser.add_argument("--n", type=int, default=800, help="number of studies (default 800)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, default=224, help="image side in pixels (default 224)")
    args = parser.parse_args(argv)
    path = generate(args.out, n=args.n, seed=args.seed, image_size=args.image_size)
    df = pd.read_parquet(path)
    print(f"wrote {len(df)} studies to {path}")
    print(df.groupby("split").size().to_string())
    print("finding prevalence:", df[list(FINDINGS)].mean().round(2).to_dict())


if __name__ == "__main__":
    main()
