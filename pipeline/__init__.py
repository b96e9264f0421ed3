"""cmkd-pipeline: cross-model knowledge distillation for audio, as a two-stage offline pipeline.

Stage one runs a teacher once over a dataset and caches its logits in a Zarr store
(:mod:`pipeline.store`); stage two trains students from audio plus those cached logits.
"""

__version__ = "0.1.0"
