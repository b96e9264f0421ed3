"""Exporting a trained model: safetensors + config.json, ONNX with its front-end sidecar, a model card."""

from .bundle import BundleError, ModelDescription, load_bundle, read_config
from .export import ExportError, export_model

__all__ = ["BundleError", "ModelDescription", "load_bundle", "read_config", "ExportError", "export_model"]
