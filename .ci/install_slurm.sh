#!/usr/bin/env bash
# SLURM and munge from the system packages, for the one-node SLURM test (tests/test_slurm.py) that
# `make test-all` runs. Idempotent: does nothing when the daemons are already installed. Needs root and
# the distribution's package mirror; where either is missing it says so and the test skips, naming why.
set -uo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
   && command -v sbatch >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_slurm: not root or no apt-get; tests/test_slurm.py will skip (install slurm-wlm and munge)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null \
    || echo "install_slurm: apt-get install slurm-wlm munge failed; tests/test_slurm.py will skip" >&2
exit 0
