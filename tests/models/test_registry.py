"""The model registry (pipeline/models/registry.py) checks the model name and config a checkpoint
names before any model is built from them."""

from __future__ import annotations

import pytest

from pipeline.models import create_model, model_entry
from pipeline.models.registry import validate_model_config


@pytest.mark.security
@pytest.mark.parametrize(
    "name, config, problem",
    [
        ("efficientnet_tiny", {"num_classes": 4, "pretrained": "imagenet"}, "unknown key"),
        ("efficientnet_tiny", {"num_classes": 4, "checkpoint": "/tmp/x.pt"}, "unknown key"),
        ("efficientnet_tiny", {"num_classes": [4]}, "non-plain"),
        ("efficientnet_tiny", {"num_classes": {"__class__": "os.system"}}, "non-plain"),
        ("os.system", {}, "unknown model"),
        (["efficientnet_tiny"], {}, "must be a string"),
        ("efficientnet_tiny", "num_classes=4", "must be a mapping"),
    ],
)
def test_model_metadata_is_checked_against_the_registry(name, config, problem):
    with pytest.raises(ValueError, match=problem):
        validate_model_config(name, config, source="x.pt")


@pytest.mark.security
def test_registry_accepts_what_create_model_records():
    for name in ("efficientnet_tiny", "ast_micro"):
        model = create_model(name, num_classes=3, n_mels=32, target_length=64)
        assert validate_model_config(model.model_name, model.model_config) == (name, model.model_config)


def test_model_options_from_a_command_line_are_typed_and_checked():
    entry = model_entry("ast_micro")
    assert entry.typed_options({"time_stride": "5", "freq_stride": "4.0", "position": "cut"}) == {
        "time_stride": 5,
        "freq_stride": 4,
        "position": "cut",
    }
    with pytest.raises(ValueError, match="time_stride='2.5'.*int"):
        entry.typed_options({"time_stride": "2.5"})  # refused, never truncated to 2
    with pytest.raises(ValueError, match="heads: not an option of ast_micro"):
        entry.typed_options({"heads": "2"})
    assert model_entry("efficientnet_b2").typed_options({"tf_variant": "true"}) == {"tf_variant": True}
