"""Manifests: the canonical clip table and one converter per official dataset format."""

from .records import (Clip, Label, Manifest, ManifestError, load_manifest, manifest_hashes, sha256_file,
                      update_dataset_info, write_manifest)

__all__ = ["Clip", "Label", "Manifest", "ManifestError", "load_manifest", "manifest_hashes", "sha256_file",
           "update_dataset_info", "write_manifest"]
