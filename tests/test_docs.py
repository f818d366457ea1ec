"""The documentation site: built in strict mode (a broken link, a missing page or an unknown
reference fails), the generated reference pages complete, the README a landing page."""
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def page_text(site: Path, page: str) -> str:
    """The text of a built page's article, tags removed."""
    raw = (site / page / "index.html").read_text()
    article = raw[raw.find("<article"):raw.find("</article>")]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", article)).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("getting-started/quickstart", "reference/cli", "reference/results", "reference/cohort",
                 "reference/refused-inputs", "reference/api", "design", "changelog", "notebook"):
        assert (site / page / "index.html").is_file(), page


def test_every_flag_of_the_study_command_is_on_the_cli_page(site):
    from study.spec.flags import build_parser

    text = page_text(site, "reference/cli")
    flags = [s for a in build_parser()._actions for s in a.option_strings]
    assert len(flags) > 30
    missing = [f for f in flags if f not in text]
    assert not missing, missing
    for command in ("python -m study.report", "python -m study.evaluate", "python -m data.mimic", "python -m benchmarks"):
        assert command in text


def test_the_refused_inputs_page_shows_each_case_with_its_message(site):
    """Generated from the test table: every case's id, and its message as the test expects it."""
    from tests.test_inputs import CASES

    text = page_text(site, "reference/refused-inputs")
    assert "accepted: the case's test would fail" not in text
    for case in CASES:
        assert case.id in text, case.id
    assert "--num-samples: must be an integer >= 1, got -1" in text
    assert "column 'acuity', row 3 (sample_id" in text


def test_the_cohort_and_results_pages_hold_the_generated_lists(site):
    from data.schema import COLUMNS
    from study.results.layout import CONTRACT_COLUMNS, EPOCH_COLUMNS

    cohort = page_text(site, "reference/cohort")
    assert all(c.name in cohort and c.allowed.replace("`", "") in cohort.replace("`", "") for c in COLUMNS)
    results = page_text(site, "reference/results")
    assert all(c in results for c in [*CONTRACT_COLUMNS, *EPOCH_COLUMNS])


def documented(column: str, text: str) -> bool:
    """A column is documented by name, or by the pattern that names its family."""
    from data.schema import FINDINGS

    if re.search(rf"(?<![\w<]){re.escape(column)}(?![\w>])", text):
        return True
    for prefix in ("param_", "setting_", "last_val_loss_"):
        if column.startswith(prefix):
            return f"{prefix}<" in text
    for suffix in ("_mean", "_std", "_ci_low", "_ci_high"):
        if column.endswith(suffix):
            return f"<metric>{suffix}" in text
    for prefix in ("true_", "prob_", "pred_", "ce_pred_", "hallucinated_", "missed_"):
        if column.startswith(prefix) and column[len(prefix):] in FINDINGS:
            return f"{prefix}<finding>" in text
    stem = re.fullmatch(r"(bleu_guess|bleu_correct)[1-4]", column)
    return bool(stem) and f"{stem.group(1)}1..4" in text


def test_a_study_s_columns_are_documented(site, tmp_path):
    """Every column of the hand-made fixture's tables after the report (the analysis adds
    configs.parquet's) is on the results page; the real sweep's columns are checked in
    tests/test_watch.py with the same rule."""
    import pandas as pd

    from study.report import main as report_main
    from tests.fixture_experiment import make_experiment

    exp = make_experiment(tmp_path / "exp")
    report_main([str(exp)])
    text = page_text(site, "reference/results")
    for table in ("trials", "configs", "epochs", "predictions"):
        undocumented = [c for c in pd.read_parquet(exp / f"{table}.parquet").columns if not documented(c, text)]
        assert not undocumented, (table, undocumented)


def test_the_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for must in ("make study", "make test", "results/", "docs", "Aksoy"):
        assert must in readme, must
    assert not re.search(r"\b(I|we|our)\b", readme), "the README speaks to the reader"
