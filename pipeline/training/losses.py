"""Task and knowledge-distillation losses: ``L = lambda * task + (1 - lambda) * KD`` (CMKD).

Everything here works on per-clip losses and reduces them with clip weights, because two kinds of
clip must be switched off per row without disturbing the rest of the batch:

* ``kd_mask`` = 0 for a clip whose teacher logits are missing from the cache (``missing: mask``);
* ``label_mask`` = 0 for an unlabelled clip (label-free KD: it teaches through the KD term only).

Masked rows are zeroed *before* any arithmetic, not after, so NaN teacher logits or placeholder
targets in those rows can reach neither the loss nor the gradient (``0 * NaN`` is NaN, and a
``where`` after the fact still back-propagates NaN through the unused branch).

All arithmetic runs in float32 whatever the input dtype, so the losses are safe under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KD_KINDS = ("kl", "bce")
# the activation a stage-one store records for its teacher, and the KD form that matches it
ACTIVATION_OF_KIND = {"kl": "softmax", "bce": "sigmoid"}


def single_label_task(loss: str, manifest_single_label: bool) -> bool:
    """Whether the task loss is softmax cross-entropy: ``loss=ce``, or ``auto`` on single-label data."""
    return loss == "ce" or (loss == "auto" and manifest_single_label)


def resolve_kd_loss(
    requested: str, single_label: bool, teacher_activation: str | None = None, source: str = "teacher"
) -> tuple[str, list[str]]:
    """The KD form to use and the warnings to print.

    ``auto`` follows the label type, as the paper does: sigmoid targets (``bce``) for multi-label
    data, softmax targets (``kl``) for single-label data. An explicit choice is honoured, but one
    that disagrees with the label type, or with the activation the teacher was trained with (the
    store's ``activation``), gets a warning naming both: softmax over a multi-label teacher's
    logits turns independent class scores into a competition the teacher never learned.
    """
    natural = "kl" if single_label else "bce"
    if requested == "auto":
        kind = natural
    elif requested in KD_KINDS:
        kind = requested
    else:
        raise ValueError(f"kd_loss must be auto, kl or bce, got {requested!r}")
    warnings = []
    label_type = "single-label" if single_label else "multi-label"
    if kind != natural:
        warnings.append(
            f"warning: kd_loss={kind} ({ACTIVATION_OF_KIND[kind]} targets) on {label_type} data, "
            f"whose natural KD form is kd_loss={natural} ({ACTIVATION_OF_KIND[natural]})"
        )
    if teacher_activation and teacher_activation != ACTIVATION_OF_KIND[kind]:
        warnings.append(
            f"warning: kd_loss={kind} uses {ACTIVATION_OF_KIND[kind]} targets but {source} was "
            f"trained with {teacher_activation} outputs"
        )
    return kind, warnings


def _check_kind(kind: str) -> None:
    if kind not in KD_KINDS:
        raise ValueError(f"unknown KD loss kind {kind!r}; expected one of {KD_KINDS}")


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")


@dataclass(frozen=True)
class KDLoss:
    """The KD term's settings in one value: the target (:func:`kd_targets`) and the loss
    (:func:`kd_loss`) read tau from here, so they cannot disagree about it."""

    kind: str  # kl | bce
    tau: float = 1.0
    tau_student: bool = False  # divide the student's logits by tau too
    tau_squared: bool = False  # multiply the KD term by tau ** 2 (Hinton et al.)
    kd_lambda: float = 0.5  # weight of the task term: lambda * task + (1 - lambda) * KD

    def __post_init__(self):
        _check_kind(self.kind)
        _check_tau(self.tau)
        if not 0.0 <= self.kd_lambda <= 1.0:
            raise ValueError(f"kd_lambda must be in [0, 1], got {self.kd_lambda}")

    @classmethod
    def from_config(cls, config, kind: str) -> KDLoss:
        """The settings of a run's recipe, with ``kind`` already resolved (never ``auto``)."""
        return cls(kind, config.tau, config.tau_student, config.tau_squared, config.kd_lambda)


def _check_pair(name: str, logits: torch.Tensor, other: torch.Tensor, other_name: str) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{name} must be [batch, classes], got shape {tuple(logits.shape)}")
    if other.shape != logits.shape:
        raise ValueError(f"{other_name} shape {tuple(other.shape)} does not match {name} shape {tuple(logits.shape)}")


def _clip_weights(weights: torch.Tensor | None, batch: int, name: str, like: torch.Tensor):
    if weights is None:
        return torch.ones(batch, dtype=torch.float32, device=like.device)
    weights = torch.as_tensor(weights, device=like.device).float()
    if weights.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(weights.shape)}")
    return weights


def _zero_masked_rows(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.where(weights[:, None] > 0, values, torch.zeros_like(values))


def _weighted_mean(per_clip: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # Divide by the weight actually present, not the batch size: the term keeps the same scale
    # however many clips are masked, so lambda means the same thing in every batch. The clamp
    # turns an all-masked batch into a loss of 0 instead of 0/0.
    return (weights * per_clip).sum() / weights.sum().clamp(min=1.0)


def _per_clip_task_loss(logits: torch.Tensor, targets: torch.Tensor, single_label: bool):
    if single_label:
        return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=-1)


def task_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    single_label: bool,
    label_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Supervised loss, averaged over the clips with ``label_mask`` > 0 (all clips by default).

    Multi-label: BCE-with-logits averaged over classes. Single-label: cross-entropy with soft
    targets, ``-sum(t * log_softmax(s))``. Both accept soft (e.g. mixup-mixed) targets.
    """
    _check_pair("student_logits", student_logits, targets, "targets")
    weights = _clip_weights(label_mask, len(student_logits), "label_mask", student_logits)
    targets = _zero_masked_rows(targets.float(), weights)
    per_clip = _per_clip_task_loss(student_logits.float(), targets, single_label)
    return _weighted_mean(per_clip, weights)


def _activate(logits: torch.Tensor, tau: float, kind: str) -> torch.Tensor:
    scaled = torch.nan_to_num(logits.detach().float(), nan=0.0) / tau
    return F.softmax(scaled, dim=-1) if kind == "kl" else torch.sigmoid(scaled)


def kd_targets(
    teacher_logits: torch.Tensor,
    loss: KDLoss,
    partner_logits: torch.Tensor | None = None,
    lam: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """The KD target, built here and nowhere else: teacher probabilities psi(z_t / tau), softmax
    over classes for ``kl``, sigmoid for ``bce`` (``loss.kind``, ``loss.tau``).

    With ``partner_logits`` and ``lam`` (clean-logit KD under mixup) the result is
    ``lam * psi(z_t / tau) + (1 - lam) * psi(z_partner / tau)``: the cached teacher never saw the
    mixed input, so its targets are mixed with the same lambda as the input. ``lam`` is a float or
    a ``[batch]`` tensor. The result is detached (the teacher is frozen) and float32. NaN logits
    (clips missing from the cache) are read as 0 so that nothing NaN flows on; those rows must
    also get ``kd_mask`` = 0, and under mixup a row needs both its own and its partner's logits.
    """
    tau, kind = loss.tau, loss.kind
    probs = _activate(teacher_logits, tau, kind)
    if partner_logits is None and lam is None:
        return probs
    if partner_logits is None or lam is None:
        raise ValueError("mixup KD targets need both partner_logits and lam (or neither)")
    _check_pair("teacher_logits", teacher_logits, partner_logits, "partner_logits")
    lam = torch.as_tensor(lam, dtype=torch.float32, device=probs.device).detach()
    if lam.ndim == 1:
        if lam.shape[0] != probs.shape[0]:
            raise ValueError(f"lam has {lam.shape[0]} entries for a batch of {probs.shape[0]}")
        lam = lam[:, None]
    elif lam.ndim != 0:
        raise ValueError(f"lam must be a float or a [batch] tensor, got shape {tuple(lam.shape)}")
    return lam * probs + (1.0 - lam) * _activate(partner_logits, tau, kind)


def _per_clip_kd_loss(student: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "kl":
        # KL(p || q) = sum p * (log p - log q); xlogy makes 0 * log 0 = 0 for classes with p = 0
        return (torch.special.xlogy(target, target) - target * F.log_softmax(student, -1)).sum(-1)
    return F.binary_cross_entropy_with_logits(student, target, reduction="none").mean(dim=-1)


def kd_loss(
    student_logits: torch.Tensor,
    target_probs: torch.Tensor,
    loss: KDLoss,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distillation loss of the student against teacher probabilities from :func:`kd_targets`.

    ``kl``: per clip ``KL(p || softmax(z_s / T))``; ``bce``: BCE-with-logits of ``z_s / T``
    against ``p``, averaged over classes. ``T`` is ``loss.tau`` when ``loss.tau_student`` else 1
    (the teacher side already carries tau, through ``kd_targets``). ``loss.tau_squared`` multiplies
    by ``tau ** 2`` (Hinton et al.), keeping gradient magnitudes comparable across temperatures.

    ``mask`` [batch] weights the clips (0 = no KD for that clip). The result is
    ``sum(mask * l) / max(sum(mask), 1)``: dividing by the clips that actually have teacher targets
    rather than by the batch size keeps the KD scale, and so the task/KD balance set by lambda,
    independent of how many clips in a batch lack logits.
    """
    _check_pair("student_logits", student_logits, target_probs, "target_probs")
    weights = _clip_weights(mask, len(student_logits), "mask", student_logits)
    target = _zero_masked_rows(target_probs.detach().float(), weights)
    student = student_logits.float() / (loss.tau if loss.tau_student else 1.0)
    value = _weighted_mean(_per_clip_kd_loss(student, target, loss.kind), weights)
    return value * loss.tau**2 if loss.tau_squared else value


def cmkd_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    target_probs: torch.Tensor | None,
    kd_mask: torch.Tensor | None,
    label_mask: torch.Tensor | None,
    single_label: bool,
    kd: KDLoss | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The CMKD objective ``kd.kd_lambda * task + (1 - kd.kd_lambda) * KD``.

    The task term averages over labelled clips (``label_mask`` > 0), the KD term over clips with
    teacher targets (``kd_mask`` > 0); None means "all clips". An unlabelled clip therefore
    contributes through KD only. ``target_probs`` None means pure supervised training: the total
    is the task loss and KD is 0; otherwise ``kd`` is the same settings the targets were built with.

    Returns ``(total, {"task": ..., "kd": ...})``; the parts are detached, for logging.
    """
    task = task_loss(student_logits, targets, single_label, label_mask)
    if target_probs is None:
        return task, {"task": task.detach(), "kd": torch.zeros_like(task).detach()}
    if kd is None:
        raise ValueError("cmkd_loss: teacher targets given without their KDLoss settings")
    distill = kd_loss(student_logits, target_probs, kd, kd_mask)
    total = kd.kd_lambda * task + (1.0 - kd.kd_lambda) * distill
    return total, {"task": task.detach(), "kd": distill.detach()}
