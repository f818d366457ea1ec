"""The network's blocks. Each takes the whole :class:`~model.config.ModelConfig` (as a dict, so
``get_config`` round-trips) and reads nothing global.

Shapes: B batch, L image tokens, D CNN channels, d model dimension, F feature tokens (4),
T report tokens, H heads, hd = d / H.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from .config import ModelConfig

NEG_INF = -1e9


class ConfiguredLayer(layers.Layer):
    """Base: stores the config dict and serialises it."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(**kwargs)
        self.config = dict(config)
        self.cfg = ModelConfig(**self.config)

    def get_config(self):
        return {**super().get_config(), "config": self.config}


@keras.saving.register_keras_serializable("mtl")
class MultiHeadAttention(ConfiguredLayer):
    """Scaled dot-product attention with separate key/value projection so keys and values of past
    tokens (or of the encoder) can be computed once and cached during decoding."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        d = self.cfg.d_model
        self.q, self.k, self.v, self.o = (layers.Dense(d, name=n) for n in "qkvo")
        self.drop = layers.Dropout(self.cfg.dropout)

    def split_heads(self, x):
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (b, t, self.cfg.num_heads, self.cfg.d_model // self.cfg.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))                                     # (B, H, T, hd)

    def project_kv(self, kv):
        return self.split_heads(self.k(kv)), self.split_heads(self.v(kv))         # 2 x (B, H, Tk, hd)

    def attend(self, query, k, v, attention_mask=None, training=False):
        """``attention_mask``: 1 where attention is allowed, broadcastable to (B, H, Tq, Tk)."""
        q = self.split_heads(self.q(query))                                       # (B, H, Tq, hd)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))                   # (B, H, Tq, Tk)
        scores = scores / ops.sqrt(ops.cast(ops.shape(q)[-1], scores.dtype))
        if attention_mask is not None:
            scores = scores + (1.0 - ops.cast(attention_mask, scores.dtype)) * NEG_INF
        weights = self.drop(ops.softmax(scores, axis=-1), training=training)
        y = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))                  # (B, Tq, H, hd)
        b, t = ops.shape(y)[0], ops.shape(y)[1]
        return self.o(ops.reshape(y, (b, t, self.cfg.d_model)))                   # (B, Tq, d)

    def call(self, query, kv, attention_mask=None, training=False):
        return self.attend(query, *self.project_kv(kv), attention_mask, training=training)


@keras.saving.register_keras_serializable("mtl")
class FeedForward(ConfiguredLayer):
    """Two-layer position-wise feed-forward with residual and layer norm."""

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        self.up = layers.Dense(self.cfg.ff_dim, activation="relu")
        self.down = layers.Dense(self.cfg.d_model)
        self.drop = layers.Dropout(self.cfg.dropout)
        self.norm = layers.LayerNormalization()

    def call(self, x, training=False):
        return self.norm(x + self.drop(self.down(self.up(x)), training=training))


@keras.saving.register_keras_serializable("mtl")
class UnifiedDataBlock(ConfiguredLayer):
    """Non-imaging inputs -> F feature tokens, one per group the cohort has (``clinical_inputs``:
    vitals, categoricals, chief complaint, ICD title; F = 4 for MIMIC, 1 for IU X-ray's indication).

    One token per *group* rather than per field: the paper encodes all vitals into one vector and
    the categoricals into another, and four tokens let the image queries choose between the kinds
    of information without multiplying keys for twelve loosely related numbers. A group the cohort
    lacks in every row gets no token: a constant token would only be a learned bias.
    """

    TEXT_FIELDS = ("chief_complaint", "icd_title")

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        d, inputs = self.cfg.d_model, self.cfg.clinical_inputs
        if "vitals" in inputs:
            self.vitals = layers.Dense(d, activation="relu")
        if "categoricals" in inputs:
            self.categoricals = layers.Dense(d, activation="relu")
        self.embed = {n: layers.Embedding(self.cfg.field_vocab, d, name=f"{n}_embedding")
                      for n in self.TEXT_FIELDS if n in inputs}
        self.text_dense = {n: layers.Dense(d, activation="relu", name=f"{n}_dense")
                           for n in self.TEXT_FIELDS if n in inputs}
        self.type_embedding = self.add_weight(shape=(len(inputs), d), initializer="random_normal", name="type")

    def text_token(self, name, ids):
        mask = ops.cast(ops.not_equal(ids, 0), self.compute_dtype)[..., None]   # (B, W, 1)
        emb = self.embed[name](ids) * mask                                        # (B, W, d)
        pooled = ops.sum(emb, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)  # (B, d): mean of words
        return self.text_dense[name](pooled)

    def call(self, inputs):
        tokens = [self.text_token(name, inputs[name]) if name in self.TEXT_FIELDS else getattr(self, name)(inputs[name])
                  for name in self.cfg.clinical_inputs]                           # F x (B, d)
        return ops.stack(tokens, axis=1) + self.type_embedding                    # (B, F, d)


@keras.saving.register_keras_serializable("mtl")
class VisualBlock(ConfiguredLayer):
    """Image tokens attend to themselves, then (as queries) to the feature tokens.

    Output: the encoder vectors shared by all three tasks. With one modality switched off (an
    ablation) the block keeps what it can: image only, the image tokens attend to themselves;
    clinical only, the F feature tokens attend to themselves (the output is then (B, F, d)).
    """

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        self.uses_image = "image" in self.cfg.modalities
        self.uses_clinical = "clinical" in self.cfg.modalities
        if self.uses_image:
            self.project = layers.Dense(self.cfg.d_model)
            self.position = self.add_weight(shape=(self.cfg.image_tokens, self.cfg.d_model),
                                            initializer="random_normal", name="position")
        self.self_attention = MultiHeadAttention(config, name="self_attention")
        if self.uses_image and self.uses_clinical:
            self.cross_attention = MultiHeadAttention(config, name="cross_attention")
        self.norm1, self.norm2 = layers.LayerNormalization(), layers.LayerNormalization()
        self.ffn = FeedForward(config)

    def call(self, image_features, data_tokens, training=False):
        if self.uses_image:
            x = self.project(image_features) + self.position                      # (B, L, d)
        else:
            x = data_tokens                                                       # (B, F, d)
        x = self.norm1(x + self.self_attention(x, x, training=training))
        if self.uses_image and self.uses_clinical:                                # Q image, K/V data
            x = self.norm2(x + self.cross_attention(x, data_tokens, training=training))
        return self.ffn(x, training=training)                                     # (B, L or F, d)


@keras.saving.register_keras_serializable("mtl")
class SequenceHead(ConfiguredLayer):
    """OC and ML decoders: layer norm, dense sigmoid per position, mean over the sequence (paper)."""

    def __init__(self, config: dict, units: int, **kwargs):
        super().__init__(config, **kwargs)
        self.units = units
        self.norm = layers.LayerNormalization()
        self.dense = layers.Dense(units, activation="sigmoid", dtype="float32")

    def call(self, encoded):
        return ops.mean(self.dense(self.norm(encoded)), axis=1)                  # (B, units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable("mtl")
class DecoderLayer(ConfiguredLayer):
    """Causal self-attention, cross-attention to the encoder, feed-forward (each residual + norm).

    ``call`` processes whole sequences (training, naive decoding); ``step`` processes one new
    position against cached keys/values, so decoding costs one position per token.
    """

    def __init__(self, config: dict, **kwargs):
        super().__init__(config, **kwargs)
        self.self_attention = MultiHeadAttention(config, name="self_attention")
        self.cross_attention = MultiHeadAttention(config, name="cross_attention")
        self.norm1, self.norm2 = layers.LayerNormalization(), layers.LayerNormalization()
        self.drop = layers.Dropout(self.cfg.dropout)
        self.ffn = FeedForward(config)

    def call(self, x, encoded, self_mask, training=False):
        a = self.self_attention(x, x, self_mask, training=training)
        x = self.norm1(x + self.drop(a, training=training))                       # (B, T, d)
        c = self.cross_attention(x, encoded, training=training)
        x = self.norm2(x + self.drop(c, training=training))
        return self.ffn(x, training=training)

    def step(self, x_t, position_mask, cache):
        """``x_t`` (B, 1, d); ``position_mask`` (Tmax,) one-hot of this position; ``cache`` holds
        ``k``, ``v`` (B, H, Tmax, hd) for this layer's past tokens and ``ck``, ``cv`` for the encoder.
        Returns the new hidden state and the updated cache."""
        k_t, v_t = self.self_attention.project_kv(x_t)                            # (B, H, 1, hd)
        onehot = position_mask[None, None, :, None]                               # (1, 1, Tmax, 1)
        k = cache["k"] + onehot * k_t                                             # write position t
        v = cache["v"] + onehot * v_t
        seen = ops.flip(ops.cumsum(ops.flip(position_mask, 0)), 0)                # (Tmax,) 1 at <= t
        a = self.self_attention.attend(x_t, k, v, seen[None, None, None, :])
        x = self.norm1(x_t + a)
        x = self.norm2(x + self.cross_attention.attend(x, cache["ck"], cache["cv"]))
        return self.ffn(x), {**cache, "k": k, "v": v}
