"""Tiny metadata and audio in the layouts the public datasets ship (FSD50K ground truth, ESC-50 meta),
written into a temporary folder for the manifest tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

VOCAB = [(0, "Bark", "/m/05tny_"), (1, "Meow", "/m/07qrkrw"), (2, "Rain", "/m/06mb1")]


def tone(path: Path, seconds: float = 0.1, sample_rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * sample_rate)) / sample_rate)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sample_rate, subtype="PCM_16")
    return path


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def fsd_row(fname, mids: str, split: str | None = None) -> str:
    names = ",".join(name for _, name, mid in VOCAB if mid in mids.split(","))
    return f'{fname},"{names}","{mids}"' + (f",{split}" if split else "")


def make_fsd50k(root: Path, dev: list[str] | None = None, eval_: list[str] | None = None) -> Path:
    truth = root / "FSD50K.ground_truth"
    write_lines(truth / "vocabulary.csv", [f"{i},{name},{mid}" for i, name, mid in VOCAB])
    dev = (
        dev
        if dev is not None
        else [
            fsd_row(101, "/m/05tny_", "train"),
            fsd_row(102, "/m/07qrkrw,/m/06mb1", "train"),
            fsd_row(103, "/m/06mb1", "val"),
        ]
    )
    eval_ = eval_ if eval_ is not None else [fsd_row(201, "/m/05tny_,/m/07qrkrw")]
    write_lines(truth / "dev.csv", ["fname,labels,mids,split"] + dev)
    write_lines(truth / "eval.csv", ["fname,labels,mids"] + eval_)
    for folder, rows in (("FSD50K.dev_audio", dev), ("FSD50K.eval_audio", eval_)):
        for row in rows:
            fname = row.split(",")[0]
            if fname and ".." not in fname:
                tone(root / folder / f"{fname}.wav")
    return root


def make_esc50(root: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """rows of (filename, fold, target, category); audio is written for plain file names."""
    write_lines(
        root / "meta/esc50.csv",
        ["filename,fold,target,category,esc10,src_file,take"]
        + [f"{f},{fold},{t},{c},False,1,A" for f, fold, t, c in rows],
    )
    for filename, *_ in rows:
        if filename and "/" not in filename:
            tone(root / "audio" / filename)
    return root


ESC_ROWS = [("1-1-A-0.wav", "1", "0", "dog"), ("2-2-A-1.wav", "2", "1", "rooster"), ("3-3-A-0.wav", "3", "0", "dog")]
