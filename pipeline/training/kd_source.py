"""What stage two hands the training loop: where the teacher's knowledge comes from, and its loss.

:mod:`pipeline.stage_two.run` builds a :class:`KDSource` (it joins the store to the manifest and checks
it); :mod:`pipeline.training.dataset` asks its :class:`StoreRows` for one clip's teacher logits, and the loop
turns them into targets with :func:`pipeline.training.losses.kd_targets`, the one place a KD target is made.
This record sits below both, so training never imports the join and the join never reaches into
training. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..views import IDENTITY, View

if TYPE_CHECKING:  # names for the type checker only: at run time this record imports numpy alone
    from ..store import LogitTable
    from .losses import KDLoss

KD_MODES = ("clean", "replay", "online")


@dataclass
class TeacherRead:
    """One clip's lookup: the view its input is built from and the teacher's logits for it."""

    view: View
    slot: int  # the stored view replayed, -1 when the view was drawn (or replay fell back to clean)
    logits: np.ndarray  # float32 [classes] in the manifest's class order; 0 where masked
    partner_logits: np.ndarray  # the mixup partner's clean logits (clean-logit KD under mixup), else 0
    mask: float  # 0: no usable teacher logits for this clip (missing row, failed row, absent partner)
    lam: float  # weight of `logits` against `partner_logits` in the target (1: no mixing)


@dataclass
class StoreRows:
    """A store's rows joined to one training split. mode: clean | replay."""

    mode: str
    table: LogitTable
    rows: np.ndarray  # store row per dataset clip (-1: not in the store, or not valid)
    class_map: np.ndarray | None = None  # store class index per manifest class, when they differ
    clean_views: np.ndarray | None = None  # [clip, view] True: stored partner unavailable, replay the clean clip

    def read(self, index: int, epoch: int, draw: Callable[[], View]) -> TeacherRead:
        """The view and the teacher logits of dataset clip `index` in `epoch`, in one lookup.

        replay: epoch e replays stored view e mod K, whose logits already include its mixup.
        clean (and replay's fallbacks): the view is ``draw()``; under mixup the clip's and its
        partner's clean logits are read together, to be mixed with the input's lambda."""
        table, row = self.table, int(self.rows[index])
        view, slot = None, -1
        if self.mode == "replay" and row >= 0 and table.num_views > 0:
            slot = epoch % table.num_views
            if self.clean_views is not None and self.clean_views[index, slot]:
                view, slot = IDENTITY, -1  # MISSING=mask: the clean clip with its clean-clip logits
            else:
                view = table.view_for(row, slot)
        if view is None:
            view = draw()
        missing = np.zeros(len(table.vocabulary_mids), dtype=np.float32)
        logits, partner, mask = missing, missing, 0.0
        if row >= 0 and slot >= 0:
            logits, mask = table.view_logits_for(np.array([row]), np.array([slot]))[0], 1.0
        elif row >= 0 and view.partner:
            both = table.logits_for(np.array([row, int(table.rows([view.partner])[0])]))
            logits, partner, mask = both[0], both[1], 1.0  # an absent partner reads NaN: masked below
        elif row >= 0:
            logits, mask = table.logits_for(np.array([row]))[0], 1.0
        if not np.isfinite(logits).all() or not np.isfinite(partner).all():
            mask = 0.0  # a failed row in the store: masked, never filled in
        if self.class_map is not None:
            logits, partner = logits[self.class_map], partner[self.class_map]
        lam = view.lam if (view.partner and slot < 0) else 1.0
        return TeacherRead(
            view,
            slot,
            np.nan_to_num(np.asarray(logits, dtype=np.float32)),
            np.nan_to_num(np.asarray(partner, dtype=np.float32)),
            mask,
            lam,
        )


@dataclass
class KDSource:
    """One student run's teacher: cached logits (`store`) or a frozen model run on each batch
    (`online_teacher`, KD=online), the loss settings (a :class:`pipeline.training.losses.KDLoss`, tau held
    there only), and what the run's summary records about it."""

    mode: str
    loss: KDLoss  # kind resolved
    store: StoreRows | None = None
    online_teacher: Any = None  # a frozen torch.nn.Module (Any: this record does not import torch)
    summary: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in KD_MODES:
            raise ValueError(f"KD mode must be one of {KD_MODES}, got {self.mode!r}")
        if (self.store is None) == (self.online_teacher is None):
            raise ValueError("a KD source has either stored logits or an online teacher")
