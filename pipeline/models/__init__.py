"""The model zoo: one registry, ``create_model``, timm-built EfficientNets and ASTs, checkpoint import.

    from pipeline.models import create_model, list_models
    model = create_model("efficientnet_b2", num_classes=200, pooling="attention")
    logits = model(features)  # [batch, frames, mels] -> [batch, classes], pre-activation

Importing this package registers every model (the builders live in efficientnet.py and ast.py).
"""

from . import ast as _ast  # noqa: F401  (registers the ast_* builders)
from . import efficientnet as _efficientnet  # noqa: F401  (registers the efficientnet_* builders)
from . import registry
from .checkpoint_import import ImportReport, load_pretrained_checkpoint
from .factory import create_model, import_report_of, model_config_of
from .pretrained import PretrainedUnavailable
from .registry import list_models, model_entry, register_model, validate_model_config

__all__ = [
    "create_model",
    "model_config_of",
    "import_report_of",
    "validate_model_config",
    "list_models",
    "model_entry",
    "register_model",
    "registry",
    "load_pretrained_checkpoint",
    "ImportReport",
    "PretrainedUnavailable",
]
