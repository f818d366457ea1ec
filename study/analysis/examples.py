"""Side by side, as in the paper's figure 2: a few test studies, each with its image, the reference
and what every group wrote, repeated phrases and unfaithful findings marked.

:func:`choose_examples` picks the studies (fixed and stratified: normal ones and a few per
finding), :func:`example_table` gathers the reports and their measures, and
:func:`examples_markdown` renders the page; the report writes it as ``examples.md`` and the
notebook shows it for any configurations.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from data.schema import FINDINGS
from study.evaluation.metrics import PER_REPORT
from study.evaluation.repetition import marked_repeats

from study.results.layout import STUDY

from .configs import config_key
from .fronts import finished


def choose_examples(cohort: pd.DataFrame, *, split: str = "test", normal: int = 2, per_finding: int = 1,
                    seed: int = 0) -> list[str]:
    """``normal`` studies of ``split`` with no finding, then ``per_finding`` with each finding
    (not chosen already), drawn with a seeded generator: the same studies on every rendering."""
    part = cohort[cohort["split"] == split]
    rng = np.random.default_rng(seed)
    chosen: list[str] = []

    def draw(candidates: pd.Series, k: int):
        pool = [s for s in candidates.astype(str) if s not in chosen]
        chosen.extend(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist() if pool else [])

    labels = part[list(FINDINGS)].fillna(0).to_numpy(float)
    draw(part.loc[labels.sum(axis=1) == 0, "sample_id"], normal)
    for j, _ in enumerate(FINDINGS):
        draw(part.loc[labels[:, j] == 1, "sample_id"], per_finding)
    return chosen


def example_table(trials: pd.DataFrame, predictions: pd.DataFrame, sample_ids: list[str],
                  groups: dict[str, list[str]]) -> pd.DataFrame:
    """One row per study and group (``groups``: label -> configuration ids): the report of the
    group's first trained model that writes reports (lowest repeat: no seed is picked for how
    well it reads), with its repetition and faithfulness measures and which findings it
    hallucinated or missed."""
    done = finished(trials).assign(config_id=lambda d: config_key(d))
    writers = set(predictions.loc[predictions["generated"].notna(), "trial_id"]) if "generated" in predictions else set()
    rows = []
    for label, config_ids in groups.items():
        candidates = done[done["config_id"].isin(config_ids) & done["trial_id"].isin(writers)]
        if candidates.empty:
            continue
        trial = candidates.sort_values(["repeat", "trial_id"]).iloc[0]
        mine = predictions[predictions["trial_id"] == trial["trial_id"]].set_index("sample_id")
        for sample in sample_ids:
            if sample not in mine.index:
                continue
            p = mine.loc[sample]
            rows.append({"sample_id": sample, "group": label, "trial_id": trial["trial_id"],
                         "seed": int(trial["seed"]) if pd.notna(trial.get("seed")) else None, "reference": p["reference"], "generated": p["generated"],
                         **{m: p.get(m, np.nan) for m in PER_REPORT},
                         "hallucinated_findings": [f for f in FINDINGS if p.get(f"hallucinated_{f}", 0) == 1],
                         "missed_findings": [f for f in FINDINGS if p.get(f"missed_{f}", 0) == 1]})
    return pd.DataFrame(rows, columns=["sample_id", "group", "trial_id", "seed", "reference", "generated",
                                       *PER_REPORT, "hallucinated_findings", "missed_findings"])


def marked(report: str) -> str:
    """The report with each word of a repeated 4-gram in ``<mark>`` (Markdown keeps inline HTML)."""
    return " ".join(f"<mark>{word}</mark>" if repeated else word for word, repeated in marked_repeats(report))


def write_thumbnails(image_paths: dict[str, str], out_dir: Path, *, size: int = 160) -> dict[str, Path]:
    """A small PNG per study (named by its place in the page, never by its id: ids are not
    file names); studies whose image is not on this machine get none."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, (sample, path) in enumerate(image_paths.items()):
        try:
            with Image.open(path) as image:
                image.convert("L").resize((size, size)).save(out_dir / f"example-{k + 1}.png")
        except OSError:
            continue
        written[sample] = out_dir / f"example-{k + 1}.png"
    return written


def _findings_cell(row) -> str:
    parts = [f"hallucinated: {', '.join(row.hallucinated_findings)}" if row.hallucinated_findings else "",
             f"missed: {', '.join(row.missed_findings)}" if row.missed_findings else ""]
    return "; ".join(p for p in parts if p) or "none"


def examples_markdown(table: pd.DataFrame, cohort: pd.DataFrame, thumbnails: dict[str, str]) -> str:
    """The page: per study its thumbnail, findings and reference, then one line per group with
    the report (repeats marked), its counts and its unfaithful findings."""
    labelled = cohort.set_index(cohort["sample_id"].astype(str))
    groups = list(dict.fromkeys(table["group"]))
    seeds = table.drop_duplicates("group").set_index("group")["seed"]
    lines = ["# Examples: what each group writes\n",
             "Test studies chosen once and kept (normal ones, then one per finding). Each group's report "
             "comes from its first trained model (" + ", ".join(f"{g}: seed {seeds[g]}" for g in groups)
             + "). <mark>Marked</mark> words repeat an earlier 4-gram of the same report; *hallucinated*: "
             "findings the report asserts that the reference negates or leaves out; *missed*: findings the "
             "reference asserts that the report leaves out (by the labeler).\n"]
    for k, (sample, part) in enumerate(table.groupby("sample_id", sort=False)):
        present = [f for f in FINDINGS if labelled.loc[sample, f] == 1] if sample in labelled.index else []
        lines.append(f"## {k + 1}. Study {sample}: {', '.join(present) or 'no finding'}\n")
        if sample in thumbnails:
            lines.append(f"![study {sample}]({thumbnails[sample]})\n")
        lines.append(f"**Reference**: {part['reference'].iloc[0]}\n")
        lines.append("| group | report | 4-gram repeats | sentence repeats | unfaithful findings |")
        lines.append("|---|---|---|---|---|")
        for row in part.itertuples():
            lines.append(f"| {row.group} | {marked(row.generated).replace('|', '&#124;')} | {row.repeat_4gram:.2f} | "
                         f"{row.repeat_sentence:.2f} | {_findings_cell(row)} |")
        lines.append("")
    return "\n".join(lines)


def study_cohort(experiment_dir: Path) -> pd.DataFrame | None:
    """The prepared cohort the study trained on (ids, splits, labels, image paths), if still here."""
    record = json.loads((experiment_dir / STUDY).read_text()) if (experiment_dir / STUDY).exists() else {}
    prepared = record.get("data", {}).get("prepared_dir")
    path = Path(prepared) / "cohort.parquet" if prepared else None
    return pd.read_parquet(path) if path is not None and path.exists() else None


def write_examples(experiment_dir: Path, trials: pd.DataFrame, predictions: pd.DataFrame,
                   groups: dict[str, list[str]]) -> Path | None:
    """``examples.md`` and its thumbnails (``plots/examples/``) for ``groups``; ``None`` when the
    study wrote no reports or its cohort is no longer on this machine."""
    cohort = study_cohort(experiment_dir)
    if cohort is None or "generated" not in predictions:
        return None
    cohort = cohort.assign(sample_id=cohort["sample_id"].astype(str))
    table = example_table(trials, predictions.assign(sample_id=predictions["sample_id"].astype(str)),
                          choose_examples(cohort), groups)
    if table.empty:
        return None
    paths = dict(zip(cohort["sample_id"], cohort["image_path"]))
    images = write_thumbnails({s: paths[s] for s in dict.fromkeys(table["sample_id"]) if s in paths},
                              experiment_dir / "plots" / "examples")
    page = experiment_dir / "examples.md"
    page.write_text(examples_markdown(table, cohort, {s: str(p.relative_to(experiment_dir)) for s, p in images.items()}))
    return page
