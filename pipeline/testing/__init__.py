"""Generated data for tests, benchmarks and one's own smoke tests: real WAV files, real manifests,
real checkpoints and real stores, written through the library's own writers; only the content is
made up.

- :mod:`.datasets`: audio (tones, noise, clicks) and the manifests over it, from a four-class tiny
  dataset whose classes a small model can learn in seconds to benchmark-sized sets of any size;
- :mod:`.stores`: a random-init teacher checkpoint and complete logit stores of simulated teacher output.

Nothing else in the library imports this package (tests/repository/test_layers.py).
"""

from .datasets import noise_and_tones, write_generated_clips, write_generated_manifest, write_tiny_dataset
from .stores import save_random_teacher, simulated_logits, write_simulated_store

__all__ = [
    "noise_and_tones",
    "save_random_teacher",
    "simulated_logits",
    "write_generated_clips",
    "write_generated_manifest",
    "write_simulated_store",
    "write_tiny_dataset",
]
