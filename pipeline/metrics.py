"""Evaluation metrics (mAP, mAUC, d-prime, accuracy) and the seed-spread rule for comparing runs.

The definitions follow the AST/PSLA evaluation code bases (docs/method.md, "Metrics"): mAP is the mean
over classes of sklearn's per-class average precision, mAUC the mean per-class ROC AUC, and d-prime
``sqrt(2) * norm.ppf(mAUC)``. Classes that cannot be scored on the given clips (no positives for
AP; no positives or no negatives for AUC) are left out and counted, rather than scored as 0 or
NaN, so a small evaluation split does not silently drag the mean down.

All ranking metrics depend only on the order of the scores, so logits and probabilities give the
same numbers.
"""

from __future__ import annotations

import math
from statistics import fmean, stdev

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

# the scores a run reports (summary.json, fold means, cross-fitting), in this order
METRIC_KEYS = ("map", "mauc", "dprime", "accuracy")


def _check_inputs(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D [clips, classes] array, got shape {scores.shape}")
    if targets.shape != scores.shape:
        raise ValueError(f"targets shape {targets.shape} does not match scores shape {scores.shape}")
    if scores.shape[0] == 0:
        raise ValueError("cannot evaluate an empty set of clips")
    bad_scores = ~np.isfinite(scores)
    if bad_scores.any():
        row, col = np.argwhere(bad_scores)[0]
        raise ValueError(
            f"scores contain {int(bad_scores.sum())} NaN/inf values (first at clip row {row}, "
            f"class {col}); a model or cache produced invalid outputs"
        )
    binary = np.isin(targets, (0, 1))
    if not binary.all():
        row, col = np.argwhere(~binary)[0]
        raise ValueError(
            f"targets must be 0/1, found {targets[row, col]!r} at clip row {row}, class {col} "
            "(evaluate against the unmixed labels, not mixup targets)"
        )
    return scores, targets.astype(np.int64)


def per_class_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of each class; NaN for a class with no positive clip (AP is undefined)."""
    scores, targets = _check_inputs(scores, targets)
    ap = np.full(scores.shape[1], np.nan)
    for c in np.flatnonzero(targets.sum(axis=0) > 0):
        ap[c] = average_precision_score(targets[:, c], scores[:, c])
    return ap


def _per_class_auc(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    positives = targets.sum(axis=0)
    auc = np.full(scores.shape[1], np.nan)
    for c in np.flatnonzero((positives > 0) & (positives < len(targets))):
        auc[c] = roc_auc_score(targets[:, c], scores[:, c])
    return auc


def _top1_accuracy(scores: np.ndarray, targets: np.ndarray, single_label: bool) -> float:
    labelled = targets.sum(axis=1) > 0
    if not labelled.any():
        return math.nan
    scores, targets = scores[labelled], targets[labelled]
    top = scores.argmax(axis=1)
    if single_label:
        return float(np.mean(top == targets.argmax(axis=1)))
    # multi-label: the top-scored class counts as correct when it is any one of the clip's labels
    return float(np.mean(targets[np.arange(len(top)), top] == 1))


def evaluate_predictions(scores: np.ndarray, targets: np.ndarray, single_label: bool) -> dict:
    """Score ``[clips, classes]`` predictions against 0/1 (or one-hot) targets.

    Returns plain floats/ints: ``map``, ``mauc``, ``dprime``, ``accuracy``, ``n_clips``,
    ``n_classes_scored`` (classes with at least one positive, i.e. those in ``map``) and
    ``n_classes_skipped`` (classes without positives). ``mauc`` averages the classes that have
    both positives and negatives; it is NaN when no class has both, and ``dprime`` is then NaN
    too (a perfect mAUC of 1 gives ``dprime = inf``). ``accuracy`` is over clips that have a
    label: argmax of scores vs argmax of the one-hot target for single-label data, and "the
    top-scored class is one of the clip's labels" for multi-label data.

    Raises ValueError for NaN/inf scores, mismatched shapes, non-0/1 targets, or (single-label)
    a clip with more than one positive.
    """
    scores, targets = _check_inputs(scores, targets)
    if single_label:
        multi = np.flatnonzero(targets.sum(axis=1) > 1)
        if multi.size:
            raise ValueError(
                f"single-label evaluation, but clip row {multi[0]} has "
                f"{int(targets[multi[0]].sum())} positive classes ({multi.size} such rows)"
            )
    ap = per_class_ap(scores, targets)
    auc = _per_class_auc(scores, targets)
    scored = ~np.isnan(ap)
    mean_ap = float(ap[scored].mean()) if scored.any() else math.nan
    mean_auc = float(np.nanmean(auc)) if (~np.isnan(auc)).any() else math.nan
    return {
        "map": mean_ap,
        "mauc": mean_auc,
        "dprime": float(math.sqrt(2.0) * norm.ppf(mean_auc)),
        "accuracy": _top1_accuracy(scores, targets, single_label),
        "n_clips": int(scores.shape[0]),
        "n_classes_scored": int(scored.sum()),
        "n_classes_skipped": int((~scored).sum()),
        # per class, in vocabulary order; None where the class has no positive clip
        "per_class_ap": [None if np.isnan(v) else float(v) for v in ap],
    }


def mean_and_spread(values: list[float]) -> dict:
    """Summarise one metric over seeds: mean, sample std (ddof=1; 0 for one run), min, max, n."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_and_spread needs at least one value")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"mean_and_spread got NaN among {values}")
    return {
        "mean": fmean(values),
        "std": stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def difference_is_effect(a_values: list[float], b_values: list[float]) -> bool | None:
    """Decide whether run group ``a`` (e.g. KD) really differs from group ``b`` (e.g. baseline).

    Rule: the difference counts only when ``|mean(a) - mean(b)|`` is strictly greater than the
    larger of the two sample standard deviations (ddof=1). That is a deliberately simple,
    conservative bar: a gap smaller than the seed-to-seed noise of either group is reported as
    "no effect", whichever direction it points. Returns None when either group has fewer than two
    runs, because with one run there is no spread to compare against.
    """
    if len(a_values) < 2 or len(b_values) < 2:
        return None
    a, b = mean_and_spread(a_values), mean_and_spread(b_values)
    return abs(a["mean"] - b["mean"]) > max(a["std"], b["std"])


def paired_difference(a_values: list[float], b_values: list[float], confidence: float = 0.95) -> dict:
    """Per-seed differences ``a[s] - b[s]`` (e.g. KD student minus the no-KD student of the same
    seed): mean, sample std, and a two-sided t confidence interval of the mean difference.

    Pairing removes what the two runs of a seed share (the clip order, the initial weights, the
    teacher), which is most of the seed-to-seed spread, so a paired interval is much tighter than
    a comparison of the two groups' spreads. ``verdict`` is "helps"/"hurts" when the interval
    excludes 0, "no effect" when it contains 0, and "one seed: no call" with fewer than two pairs.
    """
    from scipy.stats import t

    if len(a_values) != len(b_values):
        raise ValueError(f"paired values need one of each per seed, got {len(a_values)} and {len(b_values)}")
    diffs = [float(a) - float(b) for a, b in zip(a_values, b_values)]
    if not diffs:
        raise ValueError("paired_difference needs at least one pair")
    n = len(diffs)
    mean = fmean(diffs)
    if n < 2:
        return {
            "n": 1,
            "mean": mean,
            "std": math.nan,
            "low": math.nan,
            "high": math.nan,
            "diffs": diffs,
            "verdict": "one seed: no call",
        }
    std = stdev(diffs)
    half = float(t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    verdict = "helps" if low > 0 else "hurts" if high < 0 else "no effect"
    return {"n": n, "mean": mean, "std": std, "low": low, "high": high, "diffs": diffs, "verdict": verdict}
