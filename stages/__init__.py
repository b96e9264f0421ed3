"""Thin drivers, one per user-facing step; each parses arguments and calls pipeline/."""

import os

# Idle OpenMP threads must sleep, not spin: with spinning (the default), torch ran up to 35x slower
# whenever another process shared the cores (`make bench`, models entry). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
