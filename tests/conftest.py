"""Shared fixtures: tiny cohorts and prepared datasets made on the fly (no downloads, no MIMIC)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from data.dataset import prepare  # noqa: E402
from data.features import EncoderSpec  # noqa: E402
from data.preprocess import PreprocessConfig  # noqa: E402
from data.synthetic import generate  # noqa: E402

TINY_ENCODER = EncoderSpec(weights=None, image_size=64)  # 2x2 = 4 feature vectors of 1280


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    generate(out, n=60, seed=3, image_size=64)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cohort):
    return prepare(tiny_cohort, encoder=TINY_ENCODER, progress=False,
                   preprocess=PreprocessConfig(report_vocab=200, report_length=40))
