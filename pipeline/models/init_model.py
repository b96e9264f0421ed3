"""Which model a run that starts from a published PSLA file (``make teacher INIT=as_mdl_0.pth``) builds.

A PSLA file fixes its architecture: efficientnet_pytorch's EfficientNet-B0 or B2 and PSLA's head
(4-head sigmoid attention in every published file). The recipe's ``model`` and ``pooling`` were
written for training from ImageNet, so for such a file the run builds PSLA's model
(``efficientnet_{b0,b2}_psla`` with the file's head) whatever ``pooling`` says, and prints a note
naming what it replaced; a ``model`` that cannot hold the file (an AST, another EfficientNet size) is
refused, naming both. Files in any other layout (AST, ours) leave the recipe as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint_import import read_state_dict
from .psla_layout import is_psla_layout

# (efficientnet_pytorch blocks, head channels) -> EfficientNet size: B1 has B2's blocks and B0's width
PSLA_SIZES = {(16, 1280): "b0", (23, 1408): "b2"}
# recipe models that name the same backbone as a PSLA file of that size
SAME_BACKBONE = {"b0": ("efficientnet_b0", "efficientnet_b0_psla"), "b2": ("efficientnet_b2", "efficientnet_b2_psla")}


@dataclass(frozen=True)
class InitModel:
    model: str
    pooling: str
    options: dict = field(default_factory=dict)
    note: str = ""  # what of the recipe was replaced ("" when nothing)


def psla_architecture(path: str | Path) -> tuple[str, str, int] | None:
    """(EfficientNet size, pooling, attention heads) of a PSLA-layout file; None for any other layout."""
    state, _, _ = read_state_dict(path)
    if not is_psla_layout(state):
        return None
    blocks = len({k.split(".")[2] for k in state if k.startswith("effnet._blocks.")})
    head = state.get("effnet._conv_head.weight")
    size = PSLA_SIZES.get((blocks, int(head.shape[0]) if head is not None else 0))
    if size is None:
        raise ValueError(
            f"{path}: a PSLA checkpoint with {blocks} EfficientNet blocks and a "
            f"{0 if head is None else head.shape[0]}-channel head: only PSLA's B0 and B2 are supported"
        )
    heads = len({k.split(".")[2] for k in state if k.startswith("attention.att.") and k.split(".")[2].isdigit()})
    if heads:
        return size, "psla_attention", heads
    if "attention.att.weight" in state:
        return size, "psla_attention", 1  # PSLA's single-head Attention: one head of weight 1
    return size, "mean", 0  # PSLA's MeanPooling: no exact counterpart here; the import warns


def model_for_init(model: str, pooling: str, init: str) -> InitModel | None:
    """The model to build for ``INIT=init`` when it is a PSLA file, else None (build the recipe's)."""
    if not init or not Path(init).is_file():
        return None
    found = psla_architecture(init)
    if found is None:
        return None
    size, head, heads = found
    if model not in SAME_BACKBONE[size]:
        raise ValueError(
            f"INIT={init} is PSLA's EfficientNet-{size.upper()}, but the recipe's model={model} cannot "
            f"hold it: use model=efficientnet_{size}_psla (or leave model at efficientnet_{size})"
        )
    target = f"efficientnet_{size}_psla"
    options = {"attention_heads": heads} if heads not in (0, 4) else {}
    replaced = [f"model={model}"] if model != target else []
    replaced += [f"pooling={pooling}"] if pooling != head else []
    note = (
        f"note: INIT={Path(init).name} is a PSLA model: building {target} with pooling={head}"
        + (f" ({heads} heads)" if heads else "")
        + f" instead of the recipe's {' '.join(replaced)}"
        if replaced
        else ""
    )
    return InitModel(target, head, options, note)
