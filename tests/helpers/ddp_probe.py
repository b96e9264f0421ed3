"""`python -m torch.distributed.run ... tests/helpers/ddp_probe.py OUT <stages.student arguments>`: the real stage-two
driver, with two probes a test reads afterwards: each rank's epoch orders (EpochSampler indices) and its final
model weights (the module inside the real DistributedDataParallel, or the one-rank model)."""

import json
import os
import sys
from pathlib import Path

import torch

# torchrun runs this file by path, so the repo root (two folders up) goes on sys.path by hand
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.training import loop

out, argv = Path(sys.argv[1]), sys.argv[2:]
rank = int(os.environ.get("RANK", "0"))
orders, models = [], []


class RecordingSampler(loop.EpochSampler):
    def __iter__(self):
        indices = list(super().__iter__())
        orders.append({"epoch": self.epoch, "clips": self.num_clips, "indices": indices})
        return iter(indices)


def recording_create_model(*args, **kwargs):
    model = create_model(*args, **kwargs)
    models.append(model)
    return model


create_model = loop.create_model
loop.EpochSampler = RecordingSampler
loop.create_model = recording_create_model

from stages.student import main  # noqa: E402  (after the patches above, which it must see)

main(argv)
out.mkdir(parents=True, exist_ok=True)
torch.save({name: value.detach().clone() for name, value in models[0].state_dict().items()}, out / f"rank{rank}.pt")
(out / f"rank{rank}-orders.json").write_text(json.dumps(orders))
if torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()
