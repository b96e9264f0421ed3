"""ImageNet weights through timm, without ever hanging on a machine that has no internet.

timm fetches weights from the Hugging Face hub; offline, huggingface_hub retries for about 50 s before
giving up. Here the local caches (the hub cache, then torch hub's legacy checkpoint folder) are looked
up first and, when the file is there, timm is pointed straight at it. Only when it is not cached do we
go to the network, and only after a short reachability probe; offline the caller gets a
RuntimeError at once that says how to provide the weights.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import timm
from torch import nn

HUB_HOST = "huggingface.co"
PROBE_SECONDS = 3.0
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class PretrainedUnavailable(RuntimeError):
    """The requested ImageNet weights are neither cached nor downloadable right now."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _offline_requested() -> bool:
    # read at call time: huggingface_hub reads these once at import, so a later setenv would be missed
    return _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE")


def _hub_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _host_reachable(host: str, port: int = 443, timeout: float = PROBE_SECONDS) -> bool:
    """TCP connect in a daemon thread: DNS lookups ignore socket timeouts, the join does not."""
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return result["ok"]


def cached_weight_file(timm_name: str) -> str | None:
    """Path of an already-downloaded weight file for a timm model name (with optional .tag), else None."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        repo_id = cfg.hf_hub_id.split("@")[0]
        candidates = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else WEIGHT_FILES
        for filename in candidates:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=_hub_cache_dir())
            if isinstance(found, str) and os.path.exists(found):
                return found
    if cfg.url:
        import torch.hub

        # timm's cfg.url is a URL or a (URL, file name) pair; its download cache names the file the same way
        name = Path(urlparse(cfg.url).path).name if isinstance(cfg.url, str) else cfg.url[1]
        legacy = Path(torch.hub.get_dir()) / "checkpoints" / name
        if legacy.exists():
            return str(legacy)
    return None


def _unavailable(timm_name: str, why: str) -> PretrainedUnavailable:
    return PretrainedUnavailable(
        f"pretrained=imagenet needs the timm weights for {timm_name!r}, which are not in the local cache "
        f"({_hub_cache_dir()}) and {why}. Download them on a machine with internet (e.g. "
        f"python -c \"import timm; timm.create_model('{timm_name}', pretrained=True)\") and copy the cache "
        f"over (set HF_HOME or HF_HUB_CACHE to it), or use pretrained=none."
    )


def load_timm_pretrained(timm_name: str, **kwargs) -> nn.Module:
    """``timm.create_model(timm_name, pretrained=True, **kwargs)`` that fails fast when offline.

    timm applies its own adaptations on load (e.g. in_chans=1 sums the first conv over RGB, which
    gives the same response to a grey image as the RGB network had).
    """
    if timm.models.get_pretrained_cfg(timm_name) is None:
        raise PretrainedUnavailable(f"timm has no pretrained weights registered for {timm_name!r}")
    local = cached_weight_file(timm_name)
    if local is not None:
        return timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay={"file": local}, **kwargs)
    if _offline_requested():
        raise _unavailable(timm_name, "HF_HUB_OFFLINE is set")
    if not _host_reachable(HUB_HOST):
        raise _unavailable(timm_name, f"{HUB_HOST} cannot be reached within {PROBE_SECONDS:.0f} s")
    try:
        return timm.create_model(timm_name, pretrained=True, **kwargs)
    except OSError as error:  # huggingface_hub's connection errors are OSErrors
        raise _unavailable(timm_name, f"the download failed ({error})") from error
