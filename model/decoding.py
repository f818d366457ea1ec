"""Report decoding: greedy and beam search with cached keys/values, plus the naive baseline.

Incremental decoding keeps, per decoder layer, the self-attention keys/values of every position
produced so far (in fixed-size buffers, so one compiled step serves every position) and the
cross-attention keys/values of the encoder output (computed once). Each new token therefore costs
one position, where the naive loop re-runs the decoder over the whole prefix.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

START_ID, END_ID, PAD_ID = 2, 3, 0


def _max_new_tokens(model, max_len):
    limit = model.cfg.report_length - 1  # positions fed to the decoder: 0 .. T-2
    return limit if max_len is None else min(max_len, limit)


def init_cache(model, encoded):
    """Per-layer cache: empty self-attention buffers and the encoder's cross-attention K/V."""
    cfg = model.cfg
    batch = tf.shape(encoded)[0]
    shape = (batch, cfg.num_heads, cfg.report_length - 1, cfg.d_model // cfg.num_heads)
    caches = []
    for layer in model.decoder_layers:
        ck, cv = layer.cross_attention.project_kv(encoded)                       # (B, H, L, hd)
        caches.append({"k": tf.zeros(shape, ck.dtype), "v": tf.zeros(shape, ck.dtype), "ck": ck, "cv": cv})
    return caches


def make_step(model):
    """Compiled one-position step: ``(tokens (B,), position, caches) -> (logits (B, V), caches)``."""

    @tf.function(reduce_retracing=True)
    def step(tokens, position, caches):
        x = model.embed_tokens(tokens[:, None], start=position)                   # (B, 1, d)
        onehot = tf.one_hot(position, model.cfg.report_length - 1, dtype=x.dtype)  # (Tmax,)
        new = []
        for layer, cache in zip(model.decoder_layers, caches):
            x, cache = layer.step(x, onehot, cache)
            new.append(cache)
        return model.to_vocab(x)[:, 0], new                                       # (B, V)

    return step


def _steps(model):
    # one compiled step per model, kept on the model so repeated decodes reuse the trace
    if not hasattr(model, "_decode_step"):
        model._decode_step = make_step(model)
    return model._decode_step


def greedy_decode(model, inputs, *, max_len: int | None = None) -> np.ndarray:
    """(B, max_len) generated ids (no <start>), <end> kept, then padding; cached decoding."""
    encoded = model.encode(inputs)
    caches = init_cache(model, encoded)
    step = _steps(model)
    batch = int(encoded.shape[0])
    tokens = tf.fill((batch,), START_ID)
    finished = np.zeros(batch, bool)
    out = np.zeros((batch, _max_new_tokens(model, max_len)), np.int32)
    for pos in range(out.shape[1]):
        logits, caches = step(tokens, tf.constant(pos), caches)
        nxt = np.where(finished, PAD_ID, np.argmax(logits.numpy(), axis=-1))  # finished rows stay padded
        out[:, pos] = nxt
        finished |= nxt == END_ID
        if finished.all():
            break
        tokens = tf.constant(nxt, tf.int32)
    return out


def naive_greedy_decode(model, inputs, *, max_len: int | None = None) -> np.ndarray:
    """The baseline: re-run the decoder over the whole prefix for every new token."""
    encoded = model.encode(inputs)
    batch = int(encoded.shape[0])
    n = _max_new_tokens(model, max_len)
    prefix = np.full((batch, 1), START_ID, np.int32)
    finished = np.zeros(batch, bool)
    out = np.zeros((batch, n), np.int32)
    for pos in range(n):
        logits = model.decode(tf.constant(prefix), encoded)[:, -1]
        nxt = np.where(finished, PAD_ID, np.argmax(logits.numpy(), axis=-1))
        out[:, pos] = nxt
        finished |= nxt == END_ID
        if finished.all():
            break
        # finished rows keep feeding <end> (not pad) so the padding mask never empties a row
        prefix = np.concatenate([prefix, np.where(finished, END_ID, nxt)[:, None]], axis=1)
    return out


def beam_search(model, inputs, *, beam_width: int = 3, max_len: int | None = None,
                length_penalty: float = 0.0) -> np.ndarray:
    """(B, max_len) ids of the best beam per row, cached; width 1 equals greedy decoding.

    Scores are summed log-probabilities divided by ``length ** length_penalty`` at the end
    (0 = no normalisation). A finished beam only extends with padding at no cost.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    encoded = model.encode(inputs)
    batch, w = int(encoded.shape[0]), beam_width
    caches = init_cache(model, tf.repeat(encoded, w, axis=0))                     # B*W rows
    step = _steps(model)
    n = _max_new_tokens(model, max_len)
    scores = np.tile(np.array([0.0] + [-np.inf] * (w - 1)), (batch, 1))           # (B, W)
    finished = np.zeros((batch, w), bool)
    lengths = np.zeros((batch, w))
    seqs = np.zeros((batch, w, n), np.int32)
    tokens = tf.fill((batch * w,), START_ID)
    for pos in range(n):
        logits, caches = step(tokens, tf.constant(pos), caches)
        logp = tf.nn.log_softmax(logits).numpy().reshape(batch, w, -1)           # (B, W, V)
        vocab = logp.shape[-1]
        logp[finished] = -np.inf
        logp[finished, PAD_ID] = 0.0
        cand = (scores[..., None] + logp).reshape(batch, w * vocab)
        top = np.argsort(-cand, axis=1, kind="stable")[:, :w]                     # (B, W)
        beam, token = top // vocab, (top % vocab).astype(np.int32)
        scores = np.take_along_axis(cand, top, axis=1)
        seqs = np.take_along_axis(seqs, beam[..., None], axis=1)
        seqs[:, :, pos] = token
        was_finished = np.take_along_axis(finished, beam, axis=1)
        lengths = np.take_along_axis(lengths, beam, axis=1) + ~was_finished
        finished = was_finished | (token == END_ID)
        if finished.all():
            break
        flat = (np.arange(batch)[:, None] * w + beam).reshape(-1)                 # reorder caches
        caches = [{**c, "k": tf.gather(c["k"], flat), "v": tf.gather(c["v"], flat)} for c in caches]
        tokens = tf.constant(np.where(finished, END_ID, token).reshape(-1), tf.int32)
    final = scores / np.maximum(lengths, 1.0) ** length_penalty
    return seqs[np.arange(batch), np.argmax(final, axis=1)]
