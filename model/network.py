"""The cross-modal multi-task network: shared encoder, then one decoder per active task.

    image features (B, L, D) --project+pos--> (B, L, d) --self-attn--> --cross-attn(K/V: data)--> FFN
    vitals, one-hots, complaint, ICD --UnifiedDataBlock--> data tokens (B, F, d) ----^
                                    encoder output (B, L, d)
              +----------------------------+---------------------------+
        OC head: norm, sigmoid(4),    ML head: norm, sigmoid(5),   text decoder x N:
        mean over L -> (B, 4)         mean over L -> (B, 5)        causal self-attn, cross-attn,
                                                                   FFN -> logits (B, T-1, V)
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .config import ModelConfig
from .layers import DecoderLayer, SequenceHead, UnifiedDataBlock, VisualBlock


@keras.saving.register_keras_serializable("mtl")
class ReportModel(keras.Model):
    """Outputs a dict with ``text_logits`` / ``oc`` / ``ml`` for the active tasks only."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config_dict = dict(config)
        self.cfg = cfg = ModelConfig(**config)
        if "clinical" in cfg.modalities:
            self.data_block = UnifiedDataBlock(config)
        self.visual_block = VisualBlock(config)
        if "oc" in cfg.tasks:
            self.oc_head = SequenceHead(config, 4, name="oc_head")
        if "ml" in cfg.tasks:
            self.ml_head = SequenceHead(config, 5, name="ml_head")
        if "text" in cfg.tasks:
            self.token_embedding = layers.Embedding(cfg.report_vocab, cfg.d_model)
            self.position_embedding = layers.Embedding(cfg.report_length, cfg.d_model)
            self.decoder_layers = [DecoderLayer(config, name=f"decoder_{i}")
                                   for i in range(cfg.decoder_layers)]
            self.to_vocab = layers.Dense(cfg.report_vocab, name="to_vocab", dtype="float32")

    def encode(self, inputs, training=False):
        data_tokens = self.data_block(inputs) if "clinical" in self.cfg.modalities else None  # (B, F, d)
        return self.visual_block(inputs["image_features"], data_tokens, training=training)

    def embed_tokens(self, ids, start=0):
        positions = ops.arange(ops.shape(ids)[1]) + start
        return self.token_embedding(ids) + self.position_embedding(positions)     # (B, T, d)

    def decode(self, ids, encoded, training=False):
        """Full-sequence decoder pass: causal mask combined with the padding mask."""
        t = ops.shape(ids)[1]
        causal = ops.tril(ops.ones((t, t)))                                       # (T, T)
        keys_present = ops.cast(ops.not_equal(ids, 0), "float32")[:, None, None, :]  # (B, 1, 1, T)
        # position 0 (<start>) is never padding, so every query keeps at least one key
        mask = causal[None, None] * keys_present                                  # (B, 1, T, T)
        x = self.embed_tokens(ids)
        for layer in self.decoder_layers:
            x = layer(x, encoded, mask, training=training)
        return self.to_vocab(x)                                                   # (B, T, V)

    def call(self, inputs, training=False):
        encoded = self.encode(inputs, training=training)                          # (B, L, d)
        out = {}
        if "text" in self.cfg.tasks:  # teacher forcing: read tokens 0..T-2, predict 1..T-1
            out["text_logits"] = self.decode(inputs["report_ids"][:, :-1], encoded, training=training)
        if "oc" in self.cfg.tasks:
            out["oc"] = self.oc_head(encoded)
        if "ml" in self.cfg.tasks:
            out["ml"] = self.ml_head(encoded)
        return out

    def task_variables(self) -> dict:
        """Trainable variables by owner: ``"shared"`` (the encoder every task reads) and one list
        per active task (its head; for text the whole decoder). Gradient-based weighting methods
        combine the tasks' gradients on the shared ones only."""
        heads = {"oc": ["oc_head"], "ml": ["ml_head"],
                 "text": ["token_embedding", "position_embedding", "decoder_layers", "to_vocab"]}
        groups = {t: [v for name in heads[t] for v in _variables_of(getattr(self, name))] for t in self.cfg.tasks}
        owned = {id(v) for vs in groups.values() for v in vs}
        return {"shared": [v for v in self.trainable_variables if id(v) not in owned], **groups}

    def get_config(self):
        return {"config": self.config_dict, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_model(cfg: ModelConfig, *, seed: int | None = None) -> ReportModel:
    """Create the model and its weights (by calling it once on zero inputs)."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = ReportModel(cfg.to_dict())
    model(dummy_inputs(cfg, 1))
    return model


def dummy_inputs(cfg: ModelConfig, batch: int) -> dict:
    return {"image_features": np.zeros((batch, cfg.image_tokens, cfg.image_dim), "float32"),
            "vitals": np.zeros((batch, cfg.n_vitals), "float32"),
            "categoricals": np.zeros((batch, cfg.n_categoricals), "float32"),
            "chief_complaint": np.zeros((batch, 4), "int32"),
            "icd_title": np.zeros((batch, 4), "int32"),
            "report_ids": np.full((batch, cfg.report_length), 2, "int32")}


def _variables_of(part) -> list:
    """Trainable variables of a layer or a list of layers."""
    return [v for layer in (part if isinstance(part, list) else [part]) for v in layer.trainable_variables]
