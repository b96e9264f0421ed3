"""Which model a recipe builds: each family's own keys (one recipe trains both families in the CMKD grid,
so the PSLA head names mean nothing to an AST and the AST's strides nothing to a CNN)."""

from __future__ import annotations

from ..config import Config
from ..models import model_entry


def pooling_for(config: Config) -> str | None:
    """One recipe trains both families (the CMKD grid), so each has its own key: the PSLA head names
    (mean, attention) mean nothing to an AST."""
    if model_entry(config.model).family == "ast":
        return config.ast_pooling or None
    return config.pooling


AST_BUILDER_OPTIONS = {"ast_position": "position", "ast_freq_stride": "freq_stride", "ast_time_stride": "time_stride"}
# the recipe keys only one family reads (pooling_for, model_options_for); the grid does not compare the
# other family's keys when it decides whether a finished run may be reused
FAMILY_KEYS = {"ast": {"ast_pooling", "ast_source_grid", *AST_BUILDER_OPTIONS}, "cnn": {"pooling"}}


def checkpoint_grid_for(config: Config) -> tuple[int, int] | None:
    """INIT's position-table grid when the recipe gives it (ast_source_grid=FREQxTIME)."""
    from ..models.ast_releases import parse_grid

    return parse_grid(config.ast_source_grid) if config.ast_source_grid else None


def model_options_for(config: Config) -> dict:
    """Family-specific builder options that the recipe sets (the AST's position table and patch strides);
    an unset key leaves the model's own default."""
    if model_entry(config.model).family != "ast":
        return {}
    options = {option: getattr(config, key) for key, option in AST_BUILDER_OPTIONS.items()}
    return {option: value for option, value in options.items() if value}
