"""Where pretrained weights live, and how they are read or fetched, for core.models.

Files are read without running code from them (torch.load weights_only, safetensors). Fetching
is left to torch.hub and timm / huggingface_hub; this module only bounds how long they may wait
(socket_timeout, check_hub_reachable) and turns their failures into one-line UserErrors that
name the missing file and where to put it (WeightsUnavailable).
"""

from __future__ import annotations

import re
import socket
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError, URLError

import torch

from core.errors import UserError


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


# Old DenseNet checkpoints name layers "norm.1" where the module is "norm1" (see torchvision).
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _clean_keys(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")  # saved from DataParallel / DDP
        m = _DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def read_state_dict(path: Path) -> dict:
    """Tensors from a weights file (torch.save or .safetensors), loaded without running any code from it."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # installed with timm, whose hub files use it

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign files
        raise UserError(f"{path}: not a PyTorch weights file that can be loaded safely "
                        f"({exc.__class__.__name__}); pass a state_dict saved with torch.save") from None
    return as_state_dict(obj, path)


def as_state_dict(obj, path: Path) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # one of our checkpoints: take its model
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    return _clean_keys(obj)


class WeightsUnavailable(UserError):
    """No ImageNet weights to be had: ``imagenet`` raises this; ``auto`` trains from scratch and
    reports ``fallback_message`` instead, which names what is missing and how to supply it."""

    def __init__(self, message: str, fallback_message: str):
        super().__init__(message)
        self.fallback_message = fallback_message


def no_weights(name: str) -> WeightsUnavailable:
    return WeightsUnavailable(f"{name}: no ImageNet weights exist for this model; use --weights auto, none or a file",
                              f"{name}: no pretrained weights exist for this model; training from scratch")


def download_failed(name: str, what: str, exc: Exception, fix: str) -> WeightsUnavailable:
    reason = _reason(exc)
    return WeightsUnavailable(
        f"{name}: could not download ImageNet weights {what} ({reason}); {fix}, or use --weights none",
        f"{name}: ImageNet weights {what} not found and could not be downloaded ({reason}); "
        f"training from scratch (to start from ImageNet, {fix})")


def unreadable(path: Path, name: str, exc: Exception) -> UserError:
    return UserError(f"{path}: ImageNet weights for {name} cannot be loaded ({type(exc).__name__}); "
                     "delete the file to download it again, or use --weights none")


_NETWORK_LIBRARIES = {"httpx", "httpx2", "httpcore", "requests", "urllib3", "huggingface_hub"}


def is_download_error(exc: Exception) -> bool:
    """Whether ``exc`` is how a fetch fails (network, HTTP, torch.hub's hash check) rather than a bug."""
    return isinstance(exc, (OSError, HTTPException, RuntimeError)) or any(
        cls.__module__.split(".")[0] in _NETWORK_LIBRARIES for cls in type(exc).__mro__)


def _reason(exc: Exception) -> str:
    """Why a download failed, in a few words on one line."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if type(exc).__name__ == "OfflineModeIsEnabled":  # huggingface_hub's; not imported unless timm is used
        return "HF_HUB_OFFLINE is set"
    text = " ".join(str(exc.reason if isinstance(exc, URLError) else exc).split())[:160] or type(exc).__name__
    return text if isinstance(exc, RuntimeError) else f"{text}; no network?"  # RuntimeError: torch.hub's hash check


@contextmanager
def socket_timeout(seconds: float):
    """Sockets opened inside give up after ``seconds`` without progress. urllib, which torch.hub
    uses, has no timeout of its own, so an unreachable host could otherwise hang for minutes.
    (A name lookup is the resolver's business and is not covered; offline it fails at once.)"""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def hub_files(cfg) -> list[str]:  # the Hugging Face file names timm's loader tries, in its order
    return [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]


def timm_cached_file(cfg) -> Path | None:
    if not cfg.hf_hub_id:  # a few timm weights live at a plain URL, fetched through torch.hub
        path = hub_checkpoints() / file_name(cfg.url)
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = cfg.hf_hub_id.partition("@")
    for file in hub_files(cfg):
        found = try_to_load_from_cache(repo, file, revision=revision or None)
        if isinstance(found, str):
            return Path(found)
    return None


def timm_missing(cfg) -> tuple[str, str]:
    """(what is missing, how the user supplies it) for the download-failure message."""
    if not cfg.hf_hub_id:
        return file_name(cfg.url), f"put the file in {hub_checkpoints()}/"
    from huggingface_hub import constants

    repo, file = cfg.hf_hub_id.partition("@")[0], hub_files(cfg)[0]
    return (f"{file} of the Hugging Face repo {repo}",
            f"fetch it where there is a network with `hf download {repo} {file}` and pass it with --weights FILE, "
            f"or copy that Hugging Face cache to {constants.HF_HUB_CACHE}/")


def check_hub_reachable(cfg, timeout: float) -> None:
    """One plain request to the hub. huggingface_hub retries a failed download with backoff for
    about 25 s per file name, so an offline machine would wait ~50 s; this fails in seconds."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import HfHubHTTPError

    repo, _, revision = cfg.hf_hub_id.partition("@")
    try:
        get_hf_file_metadata(hf_hub_url(repo, hub_files(cfg)[0], revision=revision or None),
                             timeout=timeout)
    except HfHubHTTPError:
        pass  # the hub answered (a 404 for one file name, say): timm's loader handles that
