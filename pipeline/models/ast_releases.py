"""The AST files its authors released, recognised by name: the geometry each was trained with.

Every release is named ``<dataset>_<fstride>_<tstride>_<score>.pth`` (the authors' own ensemble script
reads the strides back from the name), was trained on 128 mel bins, and its position table is the patch
grid of that geometry: 12 x 101 for the stride-10 AudioSet files (128 x 1024 input), 8 x 64 for
``audioset_16_16_0.4422.pth``, 12 x 12 for the speech-commands file (128 x 128). A state dict does not
say its strides, so the name (or an explicit grid) is the only reliable source; the target model's
own geometry never is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .ast import patch_grid

RELEASE_NAME = re.compile(r"^(audioset|speechcommands)_(\d+)_(\d+)_(0\.\d+)\.pth$")


@dataclass(frozen=True)
class AstRelease:
    dataset: str
    n_mels: int
    target_length: int
    freq_stride: int
    time_stride: int
    num_classes: int
    norm_mean: float  # ast src/run.py, norm_stats[dataset]
    norm_std: float

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(self.n_mels, self.target_length, self.freq_stride, self.time_stride)


# dataset -> (input frames, classes, mean, std) as ast's src/run.py trains them
_TRAINED = {"audioset": (1024, 527, -4.2677393, 4.5689974), "speechcommands": (128, 35, -6.845978, 5.5654526)}


def ast_release(path: str | Path) -> AstRelease | None:
    """The release a file name says the file is, or None for any other name."""
    match = RELEASE_NAME.match(Path(path).name)
    if match is None:
        return None
    dataset, freq_stride, time_stride = match.group(1), int(match.group(2)), int(match.group(3))
    frames, classes, mean, std = _TRAINED[dataset]
    return AstRelease(dataset, 128, frames, freq_stride, time_stride, classes, mean, std)


def parse_grid(text: str) -> tuple[int, int]:
    """'12x101' -> (12, 101); anything else is a one-line error."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if match is None or 0 in (int(match.group(1)), int(match.group(2))):
        raise ValueError(f"a patch grid is written FREQxTIME, e.g. 12x101, got {text!r}")
    return int(match.group(1)), int(match.group(2))
