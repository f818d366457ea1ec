"""Clinical faithfulness of a generated report to its reference, finding by finding, from the
labeler (:mod:`data.labeler`) applied to both: the paper's figure 2 shows single-task
models "hallucinating" findings; these measures count it.

* **hallucinated**: a finding the generated report asserts (a positive mention) that the
  reference negates or does not mention;
* **missed**: a finding the reference asserts that the generated report neither asserts nor
  calls uncertain.

An uncertain reference is neither: asserting or omitting a hedged finding is not counted. Per
report, ``hallucinated`` and ``missed`` count findings (0-5); per finding, 0/1 columns
``hallucinated_<finding>`` and ``missed_<finding>`` say which.
"""
from __future__ import annotations

import numpy as np

from data.schema import FINDINGS

from data.labeler import NEGATIVE, NOT_MENTIONED, POSITIVE, UNCERTAIN


def faithfulness(reference_labels: list[dict], generated_labels: list[dict]) -> dict[str, np.ndarray]:
    """Per report: ``hallucinated`` and ``missed`` counts and the per-finding 0/1 arrays, from
    the labeler's ``{finding: status}`` of each reference and generated report."""
    out = {}
    for f in FINDINGS:
        ref = [labels[f] for labels in reference_labels]
        gen = [labels[f] for labels in generated_labels]
        out[f"hallucinated_{f}"] = np.array([g == POSITIVE and r in (NEGATIVE, NOT_MENTIONED)
                                             for r, g in zip(ref, gen)], int)
        out[f"missed_{f}"] = np.array([r == POSITIVE and g not in (POSITIVE, UNCERTAIN)
                                       for r, g in zip(ref, gen)], int)
    out["hallucinated"] = sum(out[f"hallucinated_{f}"] for f in FINDINGS)
    out["missed"] = sum(out[f"missed_{f}"] for f in FINDINGS)
    return out
