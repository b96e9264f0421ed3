"""Metrics against numbers worked out by hand (pairwise counts, precision at each hit)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from pipeline.metrics import (
    difference_is_effect,
    evaluate_predictions,
    mean_and_spread,
    per_class_ap,
)

# One class, four clips ranked 0.9 > 0.8 > 0.3 > 0.1 with positives at ranks 1 and 3.
RANK_SCORES = np.array([[0.9], [0.8], [0.3], [0.1]])
RANK_LABELS = np.array([[1], [0], [1], [0]])


def test_average_precision_of_a_hand_ranked_class():
    # precision at each positive: rank 1 -> 1/1, rank 3 -> 2/3
    expected = (1 / 1 + 2 / 3) / 2
    assert per_class_ap(RANK_SCORES, RANK_LABELS)[0] == pytest.approx(expected)
    assert evaluate_predictions(RANK_SCORES, RANK_LABELS, single_label=False)["map"] == (
        pytest.approx(0.8333333, abs=1e-6)
    )


def test_perfect_ranking_gives_ap_and_auc_of_one():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.7], [0.1, 0.6]])
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    result = evaluate_predictions(scores, labels, single_label=True)
    assert result["map"] == pytest.approx(1.0)
    assert result["mauc"] == pytest.approx(1.0)
    assert math.isinf(result["dprime"]) and result["dprime"] > 0
    assert result["accuracy"] == pytest.approx(1.0)


def test_mauc_and_dprime_by_pair_counting():
    # class 0 = the hand-ranked column: positives {0.9, 0.3} vs negatives {0.8, 0.1};
    # pairs won: 0.9>0.8, 0.9>0.1, 0.3>0.1 -> 3 of 4.
    # class 1: positives {0.2, 0.6} vs negatives {0.4, 0.5}; pairs won: 0.6>0.4, 0.6>0.5 -> 2 of 4.
    scores = np.array([[0.9, 0.2], [0.8, 0.4], [0.3, 0.5], [0.1, 0.6]])
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1]])
    result = evaluate_predictions(scores, labels, single_label=False)
    expected_auc = (3 / 4 + 2 / 4) / 2
    assert result["mauc"] == pytest.approx(expected_auc)
    assert result["dprime"] == pytest.approx(math.sqrt(2) * NormalDist().inv_cdf(expected_auc))
    # class 1 ranking 0.6(+) 0.5 0.4 0.2(+): precision 1/1 at rank 1, 2/4 at rank 4
    assert result["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 4) / 2) / 2)


def test_dprime_is_zero_at_chance_auc():
    # positives {0.9, 0.1} vs negatives {0.5, 0.5}: 2 of 4 pairs won -> AUC 0.5
    scores = np.array([[0.9], [0.5], [0.5], [0.1]])
    labels = np.array([[1], [0], [0], [1]])
    result = evaluate_predictions(scores, labels, single_label=False)
    assert result["mauc"] == pytest.approx(0.5)
    assert result["dprime"] == pytest.approx(0.0, abs=1e-12)


def test_logits_and_probabilities_rank_identically():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 4))
    labels = (rng.random((20, 4)) < 0.4).astype(int)
    labels[0] = 1  # every class gets a positive
    labels[1] = 0  # and a negative
    from_logits = evaluate_predictions(logits, labels, single_label=False)
    from_probs = evaluate_predictions(1 / (1 + np.exp(-logits)), labels, single_label=False)
    for key in ("map", "mauc", "dprime", "accuracy"):
        assert from_logits[key] == pytest.approx(from_probs[key])


def test_single_label_accuracy_counts_argmax_matches():
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 1.0]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])  # third clip is wrong
    result = evaluate_predictions(scores, labels, single_label=True)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["n_clips"] == 3


def test_multi_label_accuracy_accepts_any_label_and_skips_unlabelled_clips():
    scores = np.array(
        [
            [0.1, 0.9, 0.5],  # top class 1, labels {0, 1}: correct
            [0.8, 0.1, 0.2],  # top class 0, labels {1, 2}: wrong
            [0.3, 0.2, 0.4],  # top class 2, labels {2}: correct
            [0.9, 0.0, 0.0],  # no labels: not counted
        ]
    )
    labels = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    result = evaluate_predictions(scores, labels, single_label=False)
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["n_clips"] == 4


def test_class_without_positives_is_excluded_and_counted():
    scores = np.array([[0.9, 0.7, 0.2], [0.8, 0.6, 0.1], [0.3, 0.9, 0.4], [0.1, 0.2, 0.3]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])  # class 2 never positive
    ap = per_class_ap(scores, labels)
    assert math.isnan(ap[2])
    # class 1 ranking: 0.9(+) 0.7 0.6(+) 0.2 -> (1 + 2/3) / 2
    assert ap[1] == pytest.approx((1 + 2 / 3) / 2)
    result = evaluate_predictions(scores, labels, single_label=False)
    assert result["n_classes_scored"] == 2
    assert result["n_classes_skipped"] == 1
    assert result["map"] == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 3) / 2) / 2)
    assert not math.isnan(result["mauc"])


def test_class_with_only_positives_counts_for_ap_but_not_auc():
    scores = np.array([[0.9, 0.2], [0.8, 0.4], [0.3, 0.5], [0.1, 0.6]])
    labels = np.array([[1, 1], [0, 1], [1, 1], [0, 1]])  # class 1 positive everywhere
    result = evaluate_predictions(scores, labels, single_label=False)
    assert result["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert result["mauc"] == pytest.approx(3 / 4)  # class 0 only


def test_nan_scores_raise_with_location():
    scores = RANK_SCORES.copy()
    scores[2, 0] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        evaluate_predictions(scores, RANK_LABELS, single_label=False)
    with pytest.raises(ValueError, match="NaN"):
        per_class_ap(scores, RANK_LABELS)


def test_malformed_inputs_raise():
    with pytest.raises(ValueError, match="does not match"):
        evaluate_predictions(RANK_SCORES, RANK_LABELS[:3], single_label=False)
    with pytest.raises(ValueError, match="0/1"):
        evaluate_predictions(RANK_SCORES, RANK_LABELS * 0.5, single_label=False)
    with pytest.raises(ValueError, match="2 positive classes"):
        evaluate_predictions(np.zeros((1, 2)), np.array([[1, 1]]), single_label=True)
    with pytest.raises(ValueError, match="empty"):
        evaluate_predictions(np.zeros((0, 2)), np.zeros((0, 2)), single_label=False)


def test_mean_and_spread_uses_sample_std():
    summary = mean_and_spread([1.0, 2.0, 3.0, 4.0])
    # deviations from 2.5: squares 2.25, 0.25, 0.25, 2.25 -> sum 5, divided by n - 1 = 3
    assert summary["mean"] == pytest.approx(2.5)
    assert summary["std"] == pytest.approx(math.sqrt(5 / 3))
    assert (summary["min"], summary["max"], summary["n"]) == (1.0, 4.0, 4)
    assert summary["values"] == [1.0, 2.0, 3.0, 4.0]


def test_mean_and_spread_of_one_run_has_zero_std():
    summary = mean_and_spread([0.42])
    assert summary["std"] == 0.0 and summary["mean"] == pytest.approx(0.42)
    with pytest.raises(ValueError):
        mean_and_spread([])


def test_difference_must_exceed_the_larger_std():
    baseline = [0.50, 0.52, 0.54]  # std 0.02
    assert difference_is_effect([0.60, 0.61, 0.62], baseline) is True  # gap 0.09
    assert difference_is_effect([0.52, 0.53, 0.54], baseline) is False  # gap 0.01
    # gap 0.05 but KD runs spread wider: std of [0.47, 0.57, 0.67] is 0.1
    assert difference_is_effect([0.47, 0.57, 0.67], baseline) is False
    # direction does not matter
    assert difference_is_effect(baseline, [0.60, 0.61, 0.62]) is True


def test_difference_needs_two_runs_per_side():
    assert difference_is_effect([0.6], [0.5, 0.51]) is None
    assert difference_is_effect([0.6, 0.61], [0.5]) is None


def test_paired_difference_matches_a_hand_computed_t_interval():
    from pipeline.metrics import paired_difference

    # diffs 0.02, 0.03, 0.01: mean 0.02, sample std 0.01, t(0.975, 2) = 4.302653
    result = paired_difference([0.30, 0.32, 0.31], [0.28, 0.29, 0.30])
    half = 4.302653 * 0.01 / 3**0.5
    assert result["mean"] == pytest.approx(0.02)
    assert result["std"] == pytest.approx(0.01)
    assert (result["low"], result["high"]) == (
        pytest.approx(0.02 - half, abs=1e-6),
        pytest.approx(0.02 + half, abs=1e-6),
    )
    assert result["verdict"] == "no effect"  # the interval [-0.0048, 0.0448] contains 0
    # a consistent gain is called even though the two groups' spreads overlap
    tight = paired_difference([0.30, 0.35, 0.40], [0.28, 0.33, 0.385])
    assert tight["verdict"] == "helps" and tight["low"] > 0
    assert paired_difference([0.2, 0.21, 0.22], [0.25, 0.27, 0.26])["verdict"] == "hurts"
    assert (
        paired_difference([0.2, 0.21], [0.25, 0.27])["verdict"] == "no effect"
    )  # t(0.975, 1) = 12.7: two seeds say little
    assert paired_difference([0.3], [0.2])["verdict"] == "one seed: no call"
    with pytest.raises(ValueError, match="one of each per seed"):
        paired_difference([0.3, 0.2], [0.2])
