"""One configuration object passed whole into every block (as nanoGPT's GPTConfig)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from data.schema import INPUT_GROUPS

from .weighting import STRATEGIES

TASKS = ("text", "oc", "ml")
MODALITIES = ("image", "clinical")  # EfficientNet features; the ten non-imaging features
CLINICAL_INPUTS = tuple(INPUT_GROUPS)  # one data token each: vitals, categoricals, complaint, ICD title


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
    clinical_inputs: tuple = CLINICAL_INPUTS  # the data tokens the cohort has values for

    def __post_init__(self):
        for name in ("d_model", "num_heads", "ff_dim", "decoder_layers"):
            _require(name, getattr(self, name), integer=True, low=1)
        _require("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        self.tasks = tuple(self.tasks)
        unknown = set(self.tasks) - set(TASKS)
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        self.modalities = tuple(self.modalities)
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if set(self.clinical_inputs) - set(CLINICAL_INPUTS):
            raise ValueError(f"clinical_inputs must be a subset of {CLINICAL_INPUTS}, got {tuple(self.clinical_inputs)}")
        self.clinical_inputs = tuple(i for i in CLINICAL_INPUTS if i in self.clinical_inputs)  # token order
        if "clinical" in self.modalities and not self.clinical_inputs:
            raise ValueError("modalities: 'clinical' needs a non-imaging input, and the cohort has none "
                             "(no vitals, demographics, complaint or ICD title); use modalities [image]")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model={self.d_model}, "
                             f"num_heads={self.num_heads}")

    @classmethod
    def for_cohort(cls, fields: dict, **settings) -> "ModelConfig":
        """A configuration for a cohort that has ``fields`` (:func:`data.schema.fields_present`; a
        group not named counts as present): its data tokens are the ``clinical_inputs`` asked for
        (default all) that the cohort has; a cohort with none reads the image only, unless the
        settings ask for ``modalities`` with clinical (then the error names the rule)."""
        wanted = settings.pop("clinical_inputs", CLINICAL_INPUTS)
        settings["clinical_inputs"] = tuple(i for i in wanted if fields.get(i, True))
        if not settings["clinical_inputs"] and "modalities" not in settings:
            settings["modalities"] = ("image",)
        return cls(**settings)

    @classmethod
    def for_dataset(cls, dataset, **overrides) -> "ModelConfig":
        """Shapes and input blocks from a :class:`data.dataset.PreparedDataset` (see
        :meth:`for_cohort`); searched settings from overrides."""
        pre = dataset.preprocessor
        known = {f.name for f in fields(cls)}
        bad = set(overrides) - known
        if bad:
            raise ValueError(f"unknown model setting(s) {sorted(bad)}; known: {sorted(known)}")
        # datasets prepared before the fields were recorded have them all
        return cls.for_cohort(dataset.meta.get("fields", {}), image_tokens=dataset.meta["tokens"],
                              image_dim=dataset.meta["dim"], n_vitals=12,
                              n_categoricals=sum(len(c) for c in pre.categories.values()),
                              field_vocab=max(len(pre.tokenizers["chief_complaint"]), len(pre.tokenizers["icd_title"])),
                              report_vocab=len(pre.tokenizers["report"]),
                              report_length=pre.tokenizers["report"].max_length, **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["modalities"] = list(self.modalities)
        d["clinical_inputs"] = list(self.clinical_inputs)
        return d


PRECISIONS = ("auto", "float32", "mixed_bfloat16")  # auto: by device (model.device)
# the splits a model trains on: "train" (validation picks the best epoch and stops early), or
# "train+validate", a refit on both at a number of epochs chosen before (validation is then seen
# data: every epoch runs and the last one's weights are kept)
FIT_ON = ("train", "train+validate")
SCHEDULES = ("constant", "linear", "cosine", "inverse_sqrt")  # decay after warmup (model.schedules)


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32              # global batch, split across replicas
    learning_rate: float = 3e-5       # peak after warmup (paper)
    warmup_fraction: float = 0.1      # paper: 10 % of steps
    schedule: str = "constant"        # decay after warmup: one of SCHEDULES
    clip_norm: float | None = 1.0     # global-norm gradient clipping; None disables
    patience: int = 10                # paper: 10
    weighting: str = "static"         # a name of model.weighting.STRATEGIES
    weighting_options: dict = field(default_factory=dict)  # e.g. {"alpha": 0.6, "beta": 0.3, ...}
    precision: str = "auto"           # float32, mixed_bfloat16 (bf16 compute, float32 weights) or auto
    jit_compile: bool | str = "auto"  # XLA-compiled steps: true, false or auto (model.device's rule)
    fit_on: str = "train"             # or "train+validate": refit on both for exactly `epochs` (see FIT_ON)
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            _require(name, getattr(self, name), integer=True, low=1)
        _require("learning_rate", self.learning_rate, low=0.0, low_open=True)
        _require("warmup_fraction", self.warmup_fraction, low=0.0, high=1.0, high_open=True)
        if self.clip_norm is not None:
            _require("clip_norm", self.clip_norm, low=0.0, low_open=True)
        _require("seed", self.seed, integer=True, low=0)
        for name, allowed in (("schedule", SCHEDULES), ("weighting", tuple(STRATEGIES)), ("precision", PRECISIONS),
                              ("fit_on", FIT_ON)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                                 + (" (mixed_float16 would need loss scaling, which this loop does not do)"
                                    if name == "precision" else ""))
        if self.jit_compile not in (True, False, "auto"):
            raise ValueError(f"jit_compile must be true, false or 'auto', got {self.jit_compile!r}")
        known = STRATEGIES[self.weighting][1]
        for option, value in self.weighting_options.items():
            if option not in known:
                raise ValueError(f"weighting {self.weighting!r} takes options {list(known)}, got {option!r}")
            _require(f"{self.weighting} option {option}", value, low=0.0)


def _require(name: str, value, *, integer: bool = False, low=None, high=None,
             low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a number (an integer if asked) in the range."""
    is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not is_number or (not integer and math.isnan(value)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
