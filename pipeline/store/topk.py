"""Compact (TOPK=k) logits: the k largest logits per row, their classes, and one fill value.

Rebuild rule: ``dense = fill`` everywhere, then ``dense[indices] = values``.

The fill is the value that, put in every one of the C - k dropped classes, gives them together the
same activation mass the true dropped logits had (at temperature 1):

* softmax: ``fill = logsumexp(rest) - log(C - k)``, so the partition function is unchanged and the
  rebuilt softmax gives the k kept classes exactly their dense probabilities;
* sigmoid: ``fill = logit(mean(sigmoid(rest)))``, so the summed probability of the dropped classes
  is unchanged while the kept ones are exact anyway.

A mean never exceeds the maximum, so fill <= the (k+1)-th logit <= every kept logit: ranking is
preserved. CED's ``min(top-k) / (C - k)`` works in probability space after a fixed temperature; a
logit-space fill keeps the store temperature-free, as pre-activation storage intends.
"""

from __future__ import annotations

import numpy as np


def _sigmoid_mean_logit(rest: np.ndarray) -> np.ndarray:
    # mean of sigmoid via logaddexp keeps precision for very negative logits (probabilities ~1e-30)
    log_p = -np.logaddexp(0.0, -rest)  # log sigmoid
    log_mean = np.logaddexp.reduce(log_p, axis=-1) - np.log(rest.shape[-1])
    log_one_minus = np.log(-np.expm1(np.minimum(log_mean, -1e-300)))
    return log_mean - log_one_minus


def _softmax_fill(rest: np.ndarray) -> np.ndarray:
    return np.logaddexp.reduce(rest, axis=-1) - np.log(rest.shape[-1])


def topk_compress(logits: np.ndarray, k: int, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values [..., k] float32, indices [..., k] int16, fill [...] float32) from logits [..., C].

    Values are sorted high to low, ties broken by the lower class index. Rows holding NaN (failed
    clips) compress to NaN values and fill and indices -1.
    """
    logits = np.asarray(logits, dtype=np.float64)
    num_classes = logits.shape[-1]
    if not 0 < k < num_classes:
        raise ValueError(f"topk must be in 1..{num_classes - 1} for {num_classes} classes, got {k}")
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"activation must be 'sigmoid' or 'softmax', got {activation!r}")
    failed = np.isnan(logits).any(axis=-1)
    safe = np.where(failed[..., None], 0.0, logits)
    order = np.argsort(-safe, axis=-1, kind="stable")
    kept, dropped = order[..., :k], order[..., k:]
    values = np.take_along_axis(safe, kept, axis=-1)
    rest = np.take_along_axis(safe, dropped, axis=-1)
    fill = _softmax_fill(rest) if activation == "softmax" else _sigmoid_mean_logit(rest)
    fill = np.clip(fill, rest.min(axis=-1), rest.max(axis=-1))  # guard rounding at the extremes
    values[failed] = np.nan
    fill[failed] = np.nan
    indices = kept.astype(np.int16)
    indices[failed] = -1
    return values.astype(np.float32), indices, fill.astype(np.float32)


def rebuild_dense(values: np.ndarray, indices: np.ndarray, fill: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 [..., num_classes]: fill everywhere, then the k values scattered to their classes.

    Rows whose indices hold -1 (failed clips) come back all NaN.
    """
    values = np.asarray(values, dtype=np.float32)
    indices = np.asarray(indices)
    dense = np.repeat(np.asarray(fill, dtype=np.float32)[..., None], num_classes, axis=-1)
    failed = np.asarray((indices < 0).any(axis=-1))  # an array also for one row (a 0-d mask)
    np.put_along_axis(dense, np.where(failed[..., None], 0, indices).astype(np.intp), values, axis=-1)
    dense[failed] = np.nan
    return dense
