"""Tagging recordings of any length with a trained model (`make predict`): streams, windows, batches, tables."""

from .model_source import TaggerModel, load_tagger_model
from .predict import PredictJob, run_predict
from .tagger import PredictSettings, PredictSummary, Tagger

__all__ = [
    "TaggerModel",
    "load_tagger_model",
    "PredictJob",
    "run_predict",
    "PredictSettings",
    "PredictSummary",
    "Tagger",
]
