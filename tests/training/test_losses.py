"""Losses against values worked out with plain ``math`` (softmax, log, sigmoid written out)."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.training.losses import KDLoss, cmkd_loss, kd_loss, kd_targets, task_loss

TEACHER = [1.0, 2.0, 3.0]
STUDENT = [0.5, 0.0, -0.5]


def softmax(values, tau=1.0):
    exps = [math.exp(v / tau) for v in values]
    return [e / sum(exps) for e in exps]


def sigmoid(value):
    return 1.0 / (1.0 + math.exp(-value))


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def bce(logit, target):
    return -(target * math.log(sigmoid(logit)) + (1 - target) * math.log(1 - sigmoid(logit)))


def rows(*values):
    return torch.tensor(values, dtype=torch.float32)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_kl_kd_against_hand_computation(tau):
    probs = kd_targets(rows(TEACHER), KDLoss("kl", tau))
    assert probs[0].tolist() == pytest.approx(softmax(TEACHER, tau), rel=1e-6)
    expected = kl(softmax(TEACHER, tau), softmax(STUDENT))
    assert kd_loss(rows(STUDENT), probs, KDLoss("kl", tau)).item() == pytest.approx(expected, rel=1e-5)


def test_kl_tau_student_and_tau_squared():
    tau = 2.0
    probs = kd_targets(rows(TEACHER), KDLoss("kl", tau))
    soft_student = kl(softmax(TEACHER, tau), softmax(STUDENT, tau))
    plain_student = kl(softmax(TEACHER, tau), softmax(STUDENT))
    loss = kd_loss(rows(STUDENT), probs, KDLoss("kl", tau, tau_student=True))
    assert loss.item() == pytest.approx(soft_student, rel=1e-5)
    loss = kd_loss(rows(STUDENT), probs, KDLoss("kl", tau, tau_squared=True))
    assert loss.item() == pytest.approx(plain_student * tau**2, rel=1e-5)
    loss = kd_loss(rows(STUDENT), probs, KDLoss("kl", tau, tau_student=True, tau_squared=True))
    assert loss.item() == pytest.approx(soft_student * tau**2, rel=1e-5)


def test_kl_of_identical_distributions_is_zero():
    # softmax is shift invariant, so logits + 7 give the same distribution
    probs = kd_targets(rows(TEACHER), KDLoss("kl"))
    shifted = rows([t + 7.0 for t in TEACHER])
    assert kd_loss(shifted, probs, KDLoss("kl")).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_treats_zero_probability_classes_as_zero():
    probs = rows([0.0, 1.0, 0.0])
    expected = -math.log(softmax(STUDENT)[1])
    assert kd_loss(rows(STUDENT), probs, KDLoss("kl")).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("tau_student", [False, True])
def test_bce_kd_against_hand_computation(tau_student):
    tau = 2.0
    probs = kd_targets(rows(TEACHER), KDLoss("bce", tau))
    targets = [sigmoid(t / tau) for t in TEACHER]
    assert probs[0].tolist() == pytest.approx(targets, rel=1e-6)
    divisor = tau if tau_student else 1.0
    expected = sum(bce(s / divisor, t) for s, t in zip(STUDENT, targets)) / 3
    loss = kd_loss(rows(STUDENT), probs, KDLoss("bce", tau, tau_student=tau_student))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "kind, activate",
    [("kl", lambda z: softmax(z, 2.0)), ("bce", lambda z: [sigmoid(v / 2.0) for v in z])],
)
def test_mixup_targets_mix_teacher_and_partner_with_the_input_lambda(kind, activate):
    partner = [0.0, -1.0, 2.0]
    lam = torch.tensor([0.7, 0.2])
    probs = kd_targets(rows(TEACHER, partner), KDLoss(kind, 2.0), rows(partner, TEACHER), lam)
    for row, (own, other, weight) in enumerate([(TEACHER, partner, 0.7), (partner, TEACHER, 0.2)]):
        expected = [weight * a + (1 - weight) * b for a, b in zip(activate(own), activate(other))]
        assert probs[row].tolist() == pytest.approx(expected, rel=1e-6)


def test_mixup_targets_need_both_partner_and_lambda():
    with pytest.raises(ValueError, match="both"):
        kd_targets(rows(TEACHER), KDLoss("kl"), partner_logits=rows(TEACHER))
    with pytest.raises(ValueError, match="entries"):
        kd_targets(rows(TEACHER), KDLoss("kl"), rows(TEACHER), torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("kind", ["kl", "bce"])
def test_masked_clip_with_nan_teacher_contributes_nothing(kind):
    teacher = rows(TEACHER, [float("nan")] * 3)
    probs = kd_targets(teacher, KDLoss(kind))
    assert torch.isfinite(probs).all()
    student = rows(STUDENT, [3.0, -2.0, 1.0]).requires_grad_()
    loss = kd_loss(student, probs, KDLoss(kind), mask=torch.tensor([1.0, 0.0]))
    alone = kd_loss(rows(STUDENT), kd_targets(rows(TEACHER), KDLoss(kind)), KDLoss(kind))
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)  # divided by 1 clip, not 2
    loss.backward()
    assert torch.isfinite(student.grad).all()
    assert student.grad[1].abs().sum().item() == 0.0


def test_masked_rows_of_nan_target_probs_do_not_poison_loss_or_gradient():
    probs = rows(softmax(TEACHER), [float("nan")] * 3)
    student = rows(STUDENT, STUDENT).requires_grad_()
    loss = kd_loss(student, probs, KDLoss("kl"), mask=torch.tensor([1.0, 0.0]))
    loss.backward()
    assert loss.item() == pytest.approx(kl(softmax(TEACHER), softmax(STUDENT)), rel=1e-5)
    assert torch.isfinite(student.grad).all()


def test_fully_masked_batch_gives_zero_kd():
    probs = rows([float("nan")] * 3, [float("nan")] * 3)
    student = rows(STUDENT, STUDENT).requires_grad_()
    loss = kd_loss(student, probs, KDLoss("kl"), mask=torch.zeros(2))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(student.grad).all()


def test_bce_task_loss_with_soft_targets():
    targets = [0.3, 1.0, 0.0]  # e.g. a mixup-mixed label row
    expected = sum(bce(s, t) for s, t in zip(STUDENT, targets)) / 3
    loss = task_loss(rows(STUDENT), rows(targets), single_label=False)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_task_loss_with_mixed_one_hots():
    # two clips: a pure one-hot on class 0, and 0.6 * class 1 + 0.4 * class 2
    q = softmax(STUDENT)
    q2 = softmax(TEACHER)
    expected = (-math.log(q[0]) + -(0.6 * math.log(q2[1]) + 0.4 * math.log(q2[2]))) / 2
    loss = task_loss(rows(STUDENT, TEACHER), rows([1, 0, 0], [0, 0.6, 0.4]), single_label=True)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_label_free_clips_contribute_only_through_kd():
    student = rows(STUDENT, TEACHER)
    probs = kd_targets(rows(TEACHER, STUDENT), KDLoss("kl"))
    labelled_targets = rows([1, 0, 0], [float("nan")] * 3)  # unlabelled row holds garbage
    total, parts = cmkd_loss(
        student, labelled_targets, probs, None, torch.tensor([1.0, 0.0]), True, KDLoss("kl", kd_lambda=0.5)
    )
    expected_task = -math.log(softmax(STUDENT)[0])  # the labelled clip alone
    kd_first = kl(softmax(TEACHER), softmax(STUDENT))
    kd_second = kl(softmax(STUDENT), softmax(TEACHER))
    expected_kd = (kd_first + kd_second) / 2  # both clips have teacher targets
    assert parts["task"].item() == pytest.approx(expected_task, rel=1e-6)
    assert parts["kd"].item() == pytest.approx(expected_kd, rel=1e-5)
    assert total.item() == pytest.approx(0.5 * expected_task + 0.5 * expected_kd, rel=1e-5)


@pytest.mark.parametrize("kd_lambda", [0.0, 0.25, 1.0])
def test_lambda_weights_task_and_kd(kd_lambda):
    targets = [0.0, 1.0, 0.0]
    probs = kd_targets(rows(TEACHER), KDLoss("bce", 2.0))
    expected_task = sum(bce(s, t) for s, t in zip(STUDENT, targets)) / 3
    expected_kd = 4 * sum(bce(s, sigmoid(t / 2)) for s, t in zip(STUDENT, TEACHER)) / 3
    total, parts = cmkd_loss(
        rows(STUDENT),
        rows(targets),
        probs,
        None,
        None,
        False,
        KDLoss("bce", 2.0, tau_squared=True, kd_lambda=kd_lambda),
    )
    assert parts["kd"].item() == pytest.approx(expected_kd, rel=1e-5)
    expected = kd_lambda * expected_task + (1 - kd_lambda) * expected_kd
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_without_teacher_targets_the_loss_is_supervised_only():
    targets = [0.0, 1.0, 0.0]
    total, parts = cmkd_loss(rows(STUDENT), rows(targets), None, None, None, False)
    expected = sum(bce(s, t) for s, t in zip(STUDENT, targets)) / 3
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert parts["kd"].item() == 0.0
    with pytest.raises(ValueError, match="kd_lambda"):
        KDLoss("kl", kd_lambda=1.5)
    with pytest.raises(ValueError, match="without their KDLoss"):
        cmkd_loss(rows(STUDENT), rows(targets), rows(TEACHER), None, None, False)


def test_gradient_reaches_the_student_only():
    teacher = rows(TEACHER).requires_grad_()
    student = rows(STUDENT).requires_grad_()
    probs = kd_targets(teacher, KDLoss("kl"))
    assert not probs.requires_grad
    kd_loss(student, probs, KDLoss("kl")).backward()
    assert teacher.grad is None
    # d KL(p || softmax(s)) / d s = softmax(s) - p
    expected = [q - p for q, p in zip(softmax(STUDENT), softmax(TEACHER))]
    assert student.grad[0].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_low_precision_inputs_are_computed_in_float32():
    student = rows(STUDENT).to(torch.bfloat16)
    probs = kd_targets(rows(TEACHER).to(torch.float16), KDLoss("kl"))
    assert probs.dtype == torch.float32
    total, parts = cmkd_loss(student, rows([1, 0, 0]).half(), probs, None, None, True, KDLoss("kl"))
    assert total.dtype == torch.float32
    assert torch.isfinite(total)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kind"):
        KDLoss("mse")
    with pytest.raises(ValueError, match="tau"):
        KDLoss("kl", tau=0.0)
    with pytest.raises(ValueError, match="does not match"):
        kd_loss(rows(STUDENT), rows(TEACHER, TEACHER), KDLoss("kl"))
    with pytest.raises(ValueError, match="mask"):
        kd_loss(rows(STUDENT), rows(TEACHER), KDLoss("kl"), mask=torch.ones(3))


def test_kd_loss_follows_the_label_type_and_warns_on_a_mismatch():
    from pipeline.training.losses import resolve_kd_loss

    assert resolve_kd_loss("auto", single_label=False) == ("bce", [])
    assert resolve_kd_loss("auto", single_label=True) == ("kl", [])
    assert resolve_kd_loss("auto", False, "sigmoid") == ("bce", [])
    kind, warnings = resolve_kd_loss("kl", single_label=False, teacher_activation="sigmoid", source="stores/x.zarr")
    assert kind == "kl" and len(warnings) == 2
    assert "kd_loss=kl (softmax targets) on multi-label data" in warnings[0] and "kd_loss=bce" in warnings[0]
    assert "stores/x.zarr was trained with sigmoid outputs" in warnings[1]
    kind, warnings = resolve_kd_loss("bce", single_label=True, teacher_activation="softmax")
    assert kind == "bce" and len(warnings) == 2
    with pytest.raises(ValueError, match="kd_loss must be auto, kl or bce"):
        resolve_kd_loss("mse", False)
