"""The embedded synthetic cohort: a seeded generator that writes a cohort directory in exactly the
format the MIMIC builder writes, with signal spread over the modalities so that the cross-modal
question is real (no modality gives the answer away).

Clinical structure:

* Two latent conditions drive most findings: heart failure (cardiomegaly, edema, effusion) and
  pneumonia (consolidation, some effusion). Atelectasis appears on its own and beside effusions.
  Most studies are normal, as in MIMIC, so the balanced subset matters.
* **Findings show in the image**; the non-imaging data only hint at them. Vitals shift a little
  with edema and consolidation (hypoxia, tachypnoea, fever) and with heart failure (blood
  pressure), under much larger variation of their own; cardiomegaly and atelectasis leave no
  trace in them. Chief complaints and ICD titles follow the condition only sometimes, and no ICD
  title names a finding. No single non-imaging group predicts any finding with a logistic
  regression above AUC 0.85 (a test checks this).
* **Acuity needs both**: it follows, in equal parts, a physiological severity that the film
  cannot see (it moves oxygen saturation, heart and breathing rate, temperature) and the number
  of findings, which the vitals barely show; a test checks that vitals and findings together
  predict it far better than either alone.
* About 5 % of each vital is missing and about 1 % is implausible (a 67 degree temperature, a
  heart rate of 0) for the cleaning step to catch. Chief complaints use ED shorthand.
* Reports say more than the five labels, in many wordings: an opening line about the
  examination or comparison, devices (pacemaker, sternotomy wires, endotracheal tube, central
  line; drawn in the image too), other findings (granuloma, spine, aorta, hernia), and varied
  normal statements. Normal reports still repeat across patients, as in MIMIC.
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

from .cli import OneLineParser
from .cohort import balanced_subset, split_by_patient
from .schema import FINDINGS, write_cohort

GENDERS = ["F", "M"]
RACES = ["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN - CHINESE",
         "OTHER", "UNKNOWN", "UNABLE TO OBTAIN"]
RACE_P = [0.55, 0.2, 0.08, 0.05, 0.05, 0.05, 0.02]

COMPLAINTS = {
    "respiratory": ["sob", "dyspnea", "sob..", "SOB"],          # either condition, and others
    "heart_failure": ["doe", "SOB, LE swelling", "chf exacerbation", "orthopnea", "leg swelling"],
    "pneumonia": ["fever", "cough", "cough/fever", "pna", "FEVER, COUGH"],
    "other": ["cp", "s/p fall", "abd pain", "syncope", "n/v", "etoh", "ams", "ha", "chest pain",
              "dizziness", "CP..", "s/p MVC", "weakness", "back pain"],
}
ICD_TITLES = {  # none names one of the five findings
    "heart_failure": ["Acute on chronic diastolic (congestive) heart failure",
                      "Congestive heart failure, unspecified",
                      "Hypertensive heart disease with heart failure"],
    "pneumonia": ["Pneumonia, unspecified organism", "Fever, unspecified",
                  "Lobar pneumonia, unspecified organism"],
    "respiratory": ["Shortness of breath", "Dyspnea, unspecified", "Cough", "Hypoxemia"],
    "other": ["Chest pain, unspecified", "Other chest pain", "Syncope and collapse",
              "Unspecified fall, initial encounter", "Abdominal pain, unspecified",
              "Dizziness and giddiness", "Alcohol abuse, uncomplicated", "Weakness",
              "Essential (primary) hypertension"],
}
SENTENCES = {  # finding: (positive wordings, negative wordings)
    "Cardiomegaly": (["The heart is enlarged.", "Moderate cardiomegaly is present.",
                      "Heart size is enlarged.", "There is cardiomegaly.",
                      "The cardiac silhouette is enlarged.", "Mild cardiomegaly is again noted."],
                     ["The heart size is normal.", "Heart size is within normal limits.",
                      "The cardiomediastinal silhouette is normal.", "Cardiac size is normal."]),
    "Pleural Effusion": (["There is a small {side} pleural effusion.",
                          "A moderate {side} pleural effusion is seen.",
                          "Small {side} pleural effusion with adjacent opacity.",
                          "Blunting of the {side} costophrenic angle reflects a small effusion.",
                          "A {side} pleural effusion has increased in size."],
                         ["No pleural effusion or pneumothorax.", "There is no pleural effusion.",
                          "No pleural effusion is seen.", "The costophrenic angles are sharp."]),
    "Edema": (["There is mild pulmonary edema.", "Mild interstitial edema is present.",
               "Findings are consistent with vascular congestion and mild pulmonary edema.",
               "Moderate pulmonary edema has developed.", "Interstitial markings are increased, "
               "consistent with mild edema."],
              ["No pulmonary edema.", "There is no evidence of pulmonary edema.",
               "There is no vascular congestion."]),
    "Consolidation": (["There is a focal consolidation in the {side} lower lobe.",
                       "Patchy consolidation in the {side} lung, concerning for pneumonia.",
                       "{Side} lower lobe consolidation is present.",
                       "A new {side} basilar consolidation is seen.",
                       "Dense airspace consolidation in the {side} mid lung."],
                      ["No focal consolidation.", "The lungs are clear without focal consolidation.",
                       "There is no focal airspace consolidation."]),
    "Atelectasis": (["Linear atelectasis at the {side} base.", "Mild {side} basilar atelectasis.",
                     "There is {side} basal atelectasis.", "Plate-like atelectasis in the {side} lower lung.",
                     "Minimal {side} basilar atelectasis is noted."],
                    []),  # radiologists rarely write "no atelectasis"
}
OPENINGS = ["PA and lateral views of the chest were obtained.", "Portable AP upright view of the chest.",
            "Comparison is made to the prior radiograph.", "No prior studies are available for comparison.",
            "Single frontal view of the chest."]
CLOSINGS = ["Compared to the prior study, there is little change.", "No acute cardiopulmonary process.",
            "No pneumothorax is seen.", "The mediastinal and hilar contours are unremarkable.",
            "There are no acute osseous abnormalities."]
DEVICES = {  # device: wordings (each is also drawn, see render_image)
    "pacemaker": ["A {side} chest wall pacemaker is in place with leads in the right heart.",
                  "Dual-lead pacemaker device is unchanged.", "A cardiac pacer is seen."],
    "sternotomy": ["Median sternotomy wires are intact.", "The patient is status post median sternotomy.",
                   "Sternal wires are noted."],
    "tube": ["An endotracheal tube terminates 4 cm above the carina.",
             "The endotracheal tube is in standard position.", "ET tube tip is at the level of the clavicles."],
    "line": ["A right internal jugular central line terminates in the SVC.",
             "A central venous catheter ends in the mid SVC.", "Right IJ line tip projects over the SVC."],
}
OTHER_FINDINGS = {  # not one of the five labels; granuloma is drawn, the others are not
    "granuloma": ["A calcified granuloma is seen in the {side} upper lobe.", "Small calcified {side} upper lobe granuloma."],
    "spine": ["Degenerative changes are seen in the thoracic spine.", "Mild multilevel degenerative changes of the spine."],
    "aorta": ["The aorta is tortuous.", "Atherosclerotic calcification of the aortic knob."],
    "hernia": ["A small hiatal hernia is present.", "There is a moderate hiatal hernia."],
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

    severity = rng.normal(0, 1, n)  # physiological derangement the film cannot show
    vitals = pd.DataFrame({
        "o2sat": np.minimum(100, 97 - 2.2 * severity - 1.2 * edema - 1.0 * cons + rng.normal(0, 1.2, n)).round(),
        "heartrate": (84 + 10 * severity + 4 * edema + 5 * cons + rng.normal(0, 10, n)).round(),
        "resprate": (17 + 2.5 * severity + 0.8 * edema + 0.8 * cons + rng.normal(0, 1.5, n)).round(),
        "sbp": (130 + 7 * hf + rng.normal(0, 18, n)).round(),
        "dbp": (76 + 3 * hf + rng.normal(0, 10, n)).round(),
        "temperature": (98.3 + 0.3 * severity + 0.7 * cons + rng.normal(0, 0.6, n)).round(1),
    })
    implausible = {"o2sat": 0, "heartrate": 0, "resprate": 0, "sbp": 999, "dbp": 0,
                   "temperature": 67.0}
    for col, bad in implausible.items():
        vitals.loc[rng.random(n) < 0.01, col] = bad
        vitals.loc[rng.random(n) < (0.08 if col == "temperature" else 0.05), col] = np.nan
    df = pd.concat([vitals, df], axis=1)

    condition = np.where(hf, "heart_failure", np.where(pna, "pneumonia", "other"))
    # a condition shows in the complaint or the ICD title only sometimes; others share the
    # respiratory ones, and some patients without a condition get a condition's
    stray = rng.choice(["heart_failure", "pneumonia", "respiratory"], n)
    specific = np.where(condition == "other", stray, condition)
    p_specific = np.where(condition == "other", 0.12, 0.45)
    general = np.where(rng.random(n) < np.where(condition == "other", 0.1, 0.45), "respiratory", "other")
    df["chief_complaint"] = [rng.choice(COMPLAINTS[specific[i] if rng.random() < p_specific[i] else general[i]])
                             for i in range(n)]
    df["icd_title"] = [rng.choice(ICD_TITLES[specific[i] if rng.random() < p_specific[i] else general[i]])
                       for i in range(n)]
    df["gender"] = rng.choice(GENDERS, n)
    df["ethnicity"] = rng.choice(RACES, n, p=RACE_P)

    score = 0.9 + 0.9 * severity + 0.9 * df[list(FINDINGS)].sum(axis=1) + rng.normal(0, 0.4, n)
    df["acuity"] = 5 - np.digitize(score, [0.3, 1.1, 2.1, 3.1])  # 1 = most urgent

    df["side"] = rng.choice(["left", "right"], n)
    for device in DEVICES:
        rate = {"pacemaker": 0.04 + 0.15 * hf, "sternotomy": 0.06 + 0.12 * hf,
                "tube": 0.03 + 0.05 * (severity > 1.5), "line": 0.05 + 0.05 * (severity > 1.0)}[device]
        df[f"device_{device}"] = (rng.random(n) < rate).astype(np.int8)
    for other in OTHER_FINDINGS:
        df[f"other_{other}"] = (rng.random(n) < 0.07).astype(np.int8)
    df["report"] = [write_report(row, rng) for row in df.to_dict("records")]
    return df


def write_report(row, rng: np.random.Generator) -> str:
    """A report that agrees with the row's labels and says more: examination, devices, other
    findings and normal statements, in varied wording and order."""
    labels = {f: row[f] for f in FINDINGS}
    fmt = {"side": row["side"], "Side": row["side"].capitalize()}
    if not any(labels.values()) and not any(row[f"device_{d}"] for d in DEVICES) and rng.random() < 0.4:
        return "The lungs are clear. No pleural effusion or pneumothorax. The cardiomediastinal silhouette is normal."
    body = []
    for finding, (positive, negative) in SENTENCES.items():
        if labels[finding]:
            body.append(rng.choice(positive).format(**fmt))
        elif negative and rng.random() < 0.75:  # normal findings are not always spelled out
            body.append(rng.choice(negative))
    if not (labels["Consolidation"] or labels["Edema"] or labels["Atelectasis"]) and rng.random() < 0.5:
        body.append(rng.choice(["The lungs are clear.", "The lungs are well expanded and clear.",
                                "Lungs are clear bilaterally."]))
    body += [rng.choice(DEVICES[d]).format(**fmt) for d in DEVICES if row[f"device_{d}"]]
    body += [rng.choice(OTHER_FINDINGS[o]).format(**fmt) for o in OTHER_FINDINGS if row[f"other_{o}"]]
    if rng.random() < 0.5:
        rng.shuffle(body)
    opening = [rng.choice(OPENINGS)] if rng.random() < 0.5 else []
    closing = [rng.choice(CLOSINGS)] if rng.random() < 0.4 else []
    # a normal study whose every optional sentence was skipped still gets a report (no draw here,
    # so every other report of a cohort stays as it was)
    return " ".join(opening + body + closing) or "No acute cardiopulmonary process."


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
    # devices and a granuloma (bright, thin or small: what the report mentions beyond the labels)
    if row.get("device_pacemaker"):
        img[(abs(x - 0.8) < 0.05) & (abs(y - 0.2) < 0.03)] = 0.95
    if row.get("device_sternotomy"):
        for wy in (0.3, 0.38, 0.46, 0.54):
            img[((x - 0.5) / 0.012) ** 2 + ((y - wy) / 0.02) ** 2 < 1] = 0.97
    if row.get("device_tube"):
        img[(abs(x - 0.5) < 0.006) & (y < 0.3)] = 0.95
    if row.get("device_line"):
        img[(abs((x - 0.35) - 0.43 * (y - 0.05)) < 0.006) & (y > 0.05) & (y < 0.36)] = 0.95
    if row.get("other_granuloma"):
        img[((x - side_cx) ** 2 + (y - 0.3) ** 2) < 0.012 ** 2] = 0.97
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(-0.05, 0.05)
    img = (img - 0.4) * contrast + 0.4 + brightness + rng.normal(0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def generate(out_dir: str | Path, *, n: int = 1600, seed: int = 0, image_size: int = 224) -> Path:
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


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="cohort directory to write")
    parser.add_argument("--n", type=int, default=1600, help="number of studies (default 1600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, default=224, help="image side in pixels (default 224)")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, value, low, high in (("--n", args.n, 10, None), ("--seed", args.seed, 0, None),
                                   ("--image-size", args.image_size, 32, 1024)):
        if value < low or (high is not None and value > high):
            raise SystemExit(f"{flag} {value}: must be an integer >= {low}" + (f" and <= {high}" if high else "")
                             + (" (enough studies for three splits)" if flag == "--n" else ""))
    path = generate(args.out, n=args.n, seed=args.seed, image_size=args.image_size)
    df = pd.read_parquet(path)
    print(f"wrote {len(df)} studies to {path}")
    print(df.groupby("split").size().to_string())
    print("finding prevalence:", df[list(FINDINGS)].mean().round(2).to_dict())


if __name__ == "__main__":
    main()
