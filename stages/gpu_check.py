"""`make gpu-check`: AMP training, stage one on the GPU, a KD student epoch, torchrun/DDP, paper-size
throughput and student/teacher inference cost, on the embedded corpus; results in bench/gpu_check.json (see bench/gpu.py)."""

import argparse
import json

import torch

from bench.gpu import run_gpu_check

from .common import run_main


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)  # no options; --help says what it does
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; run it on a GPU machine")
        return 1
    result = run_gpu_check()
    print(json.dumps(result, indent=2))
    failed = [name for name, value in result.items() if isinstance(value, dict) and "error" in value]
    print(f"gpu-check: {'FAILED: ' + ', '.join(failed) if failed else 'all steps ran'} -> bench/gpu_check.json")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
