"""One configuration object passed whole into every block (as nanoGPT's GPTConfig)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

TASKS = ("text", "oc", "ml")
MODALITIES = ("image", "clinical")  # EfficientNet features; the ten non-imaging features


@dataclass
class ModelConfig:
    # what the data dictates (filled by ModelConfig.for_dataset)
    image_tokens: int = 49          # L: CNN feature vectors per image (7x7 at 224 px)
    image_dim: int = 1280           # D: CNN channels (EfficientNet-B0)
    n_vitals: int = 12              # six scaled vitals + six missing indicators
    n_categoricals: int = 10        # one-hot gender + ethnicity
    field_vocab: int = 500          # chief complaint / ICD title vocabulary
    report_vocab: int = 1000
    report_length: int = 60         # tokens incl. <start>/<end>
    # what the study searches (paper: 3 heads, feed-forward 256)
    d_model: int = 120
    num_heads: int = 3
    ff_dim: int = 256
    decoder_layers: int = 1
    dropout: float = 0.1
    tasks: tuple = TASKS
    modalities: tuple = MODALITIES  # inputs the encoder reads (ablations switch one off)

    def __post_init__(self):
        self.tasks = tuple(self.tasks)
        unknown = set(self.tasks) - set(TASKS)
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        self.modalities = tuple(self.modalities)
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model={self.d_model}, "
                             f"num_heads={self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def for_dataset(cls, dataset, **overrides) -> "ModelConfig":
        """Shapes from a :class:`data.dataset.PreparedDataset`; searched settings from overrides."""
        pre = dataset.preprocessor
        known = {f.name for f in fields(cls)}
        bad = set(overrides) - known
        if bad:
            raise ValueError(f"unknown model setting(s) {sorted(bad)}; known: {sorted(known)}")
        return cls(image_tokens=dataset.meta["tokens"], image_dim=dataset.meta["dim"],
                   n_vitals=12, n_categoricals=sum(len(c) for c in pre.categories.values()),
                   field_vocab=max(len(pre.tokenizers["chief_complaint"]), len(pre.tokenizers["icd_title"])),
                   report_vocab=len(pre.tokenizers["report"]),
                   report_length=pre.tokenizers["report"].max_length, **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["modalities"] = list(self.modalities)
        return d
