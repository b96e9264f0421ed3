"""`make gpu-check`: one student epoch with AMP on the embedded corpus, recording clips/s and GPU
utilisation (sampled with nvidia-smi while it runs) to bench/gpu_check.json."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from pipeline.config import load_config
from pipeline.distill import kd_job_extras, latest_store
from pipeline.training import run_training


def sample_utilisation(samples: list, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split(",")
            samples.append((float(out[0]), float(out[1])))
        except Exception:
            pass
        time.sleep(0.5)


def main(argv=None) -> int:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; run it on a GPU machine")
        return 1
    store = latest_store("demo")
    overrides = ["epochs=1", "amp=true", "device=cuda", "num_workers=8", "batch_size=64"]
    if store:
        overrides += ["kd=clean", f"logits={store}"]
    config = load_config("configs/demo.yaml", overrides)
    samples, stop = [], threading.Event()
    thread = threading.Thread(target=sample_utilisation, args=(samples, stop), daemon=True)
    thread.start()
    started = time.time()
    run_training("demo", config, "gpu-check", job_extras=kd_job_extras(Path("data_manifests/demo")))
    stop.set()
    metrics = (Path("runs/demo/gpu-check/metrics.csv").read_text().splitlines())[-1].split(",")
    result = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "kd": config.kd,
              "epoch_seconds": time.time() - started, "train_clips_per_s": float(metrics[-1]),
              "gpu_util_mean": sum(s[0] for s in samples) / max(len(samples), 1),
              "gpu_util_max": max((s[0] for s in samples), default=0.0),
              "gpu_mem_mb_max": max((s[1] for s in samples), default=0.0)}
    Path("bench").mkdir(exist_ok=True)
    Path("bench/gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
