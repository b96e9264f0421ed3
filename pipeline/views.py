"""The View record: every random choice behind one augmented input, as plain data (numpy-free too).

A :class:`View` names the mixup partner (by clip_id) and lambda, a time shift and the SpecAugment
masks. Stage one stores the views its teacher saw and stage two replays them, so the record is
shared by the store (which must import without the training stack) and by
:mod:`pipeline.augment`, which draws and renders views with torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_MASKS = 2  # SpecAugment masks per axis (the parent recipe uses one of each; room for two)


@dataclass(frozen=True)
class View:
    seed: int
    view_index: int
    partner: str = ""  # clip_id of the mixup partner, "" for no mixup
    lam: float = 1.0  # weight of the clip itself; the partner gets 1 - lam
    time_shift: int = 0  # circular shift in frames (positive = later)
    freq_masks: tuple[tuple[int, int], ...] = ()  # (start bin, width)
    time_masks: tuple[tuple[int, int], ...] = ()  # (start frame, width)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["freq_masks"] = [list(m) for m in self.freq_masks]
        data["time_masks"] = [list(m) for m in self.time_masks]
        return data


IDENTITY = View(seed=0, view_index=0)
