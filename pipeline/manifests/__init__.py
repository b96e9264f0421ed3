"""Manifests: the canonical clip table and one converter per official dataset format."""

from .ast_json import prepare_ast_json
from .audioset import prepare_audioset, scan_audioset
from .build import FORMATS, build_manifest, prepare, summary_line
from .derived import pack_dataset, training_clips
from .esc50 import prepare_esc50
from .fsd50k import prepare_fsd50k
from .records import (
    Clip,
    Label,
    Manifest,
    ManifestError,
    is_fold_based,
    load_manifest,
    manifest_hashes,
    sha256_file,
    update_dataset_info,
    write_manifest,
)

__all__ = [
    "Clip",
    "Label",
    "Manifest",
    "ManifestError",
    "is_fold_based",
    "load_manifest",
    "manifest_hashes",
    "sha256_file",
    "update_dataset_info",
    "write_manifest",
    "FORMATS",
    "prepare",
    "build_manifest",
    "summary_line",
    "prepare_fsd50k",
    "prepare_esc50",
    "prepare_audioset",
    "scan_audioset",
    "prepare_ast_json",
    "pack_dataset",
    "training_clips",
]
