"""Model zoo: torchvision backbones, any timm model (``timm/<name>``) and a small CNN, each with a
head for this dataset's classes, and where their pretrained ImageNet weights come from.

``weights`` is one of WEIGHTS or a file. ``imagenet`` fetches the weights by the library's own
mechanism: torchvision's through torch.hub (hash-checked, into ``torch.hub.get_dir()/checkpoints``
under torchvision's file name, used from there offline next time), a timm model's through timm
(the Hugging Face cache). When they can be neither found nor fetched, a UserError names the file
and where to put it; ``auto`` then trains from scratch and says so. Each network step waits at
most DOWNLOAD_TIMEOUT_S, so an offline machine gets its answer in seconds. timm is imported only
for ``timm/`` models (it costs seconds), so ``import core.models`` costs no more than torchvision.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
import torch.nn as nn
import torchvision.models as tvm

from core import rulebook as rb
from core.errors import UserError
from core.weights import (
    WeightsUnavailable,
    as_state_dict,
    check_hub_reachable,
    download_failed,
    file_name,
    hub_checkpoints,
    is_download_error,
    no_weights,
    read_state_dict,
    socket_timeout,
    timm_cached_file,
    timm_missing,
    unreadable,
)

# name -> torchvision weights enum (its DEFAULT member names the ImageNet checkpoint to fetch)
TORCHVISION = {
    "resnet18": tvm.ResNet18_Weights,
    "resnet50": tvm.ResNet50_Weights,
    "resnext50_32x4d": tvm.ResNeXt50_32X4D_Weights,
    "densenet121": tvm.DenseNet121_Weights,
    "vgg16_bn": tvm.VGG16_BN_Weights,
    "efficientnet_b0": tvm.EfficientNet_B0_Weights,
}
assert tuple(TORCHVISION) == rb.TORCHVISION_MODELS, "the rule book lists the torchvision models by name"
MODELS = rb.MODEL.values
TIMM_PREFIX = rb.TIMM_PREFIX  # --model timm/<name>: any model timm.list_models() knows, e.g. timm/convnext_tiny
HEADS = tuple(h for h in rb.HEAD.values if h != "auto")  # what "auto" resolves to
DOWNLOAD_TIMEOUT_S = 10.0  # per connect / read: long enough for a slow link, short enough offline
WEIGHTS = rb.WEIGHTS.values  # or the path of a weights file
# Where each torchvision family keeps its final Linear layer (the head), as an attribute path.
HEAD_PATH = {"smallcnn": "fc", "resnet18": "fc", "resnet50": "fc", "resnext50_32x4d": "fc",
             "densenet121": "classifier", "vgg16_bn": "classifier.6", "efficientnet_b0": "classifier.1"}


class FactorizedHead(nn.Module):
    """18 competition logits as sums of mask (3), gender (2) and age (3) logits.

    logit[c] = mask[c // 6] + gender[(c // 3) % 2] + age[c % 3], so the softmax over the 18
    classes is the product of three independent softmaxes and cross-entropy over the 18
    classes equals the sum of the three attributes' cross-entropies. Each attribute then
    learns from every image (all masked photos teach age, for instance) instead of from the
    few images of one of 18 combinations. Output and losses stay 18-way, so nothing
    downstream changes.
    """

    def __init__(self, in_features: int, parts: tuple[int, int, int] = (3, 2, 3)):
        super().__init__()
        self.parts = parts
        self.linear = nn.Linear(in_features, sum(parts))
        m, g, a = parts
        c = torch.arange(m * g * a)
        self.register_buffer("index", torch.stack([c // (g * a), m + (c // a) % g, m + g + c % a]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return z[:, self.index[0]] + z[:, self.index[1]] + z[:, self.index[2]]


class SmallCNN(nn.Module):
    """Eight conv-BN-ReLU layers, 24-48-96-192 channels, each stage opened by a stride-2 conv.

    About 70M multiply-adds for a 96x96 input (resnet18 at 96x128: ~450M) and 0.66M
    parameters, so it trains from scratch in minutes on a laptop CPU.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (24, 48, 96, 192)):
        super().__init__()
        layers, c_in = [], 3
        for c_out in widths:
            layers += [*_conv_bn_relu(c_in, c_out, stride=2), *_conv_bn_relu(c_out, c_out)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class TimmNet(nn.Module):
    """A timm backbone built with num_classes=0 (its pooled features, for every timm model,
    whatever shape its own classifier has) followed by our head, so both heads fit any backbone.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _timm():
    """The timm module, imported on first use: it takes seconds and only timm/ models need it."""
    try:
        import timm
    except ImportError:
        raise UserError(f"{TIMM_PREFIX}<name> models need the timm package: pip install 'timm>=0.9'") from None
    return timm


def check_model_name(name: str) -> None:
    if name.startswith(TIMM_PREFIX):
        return _check_timm_name(name)
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"model {name!r} is not supported{hint}; choose one of: {', '.join(MODELS)}, "
                        f"or {TIMM_PREFIX}<name> for a timm model")


def _check_timm_name(name: str) -> None:
    timm, arch = _timm(), name.removeprefix(TIMM_PREFIX)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        raise UserError(f"model {name!r}: timm has no model {arch!r}{hint} (timm.list_models() lists them)")
    try:
        timm.models.get_pretrained_cfg(arch)  # a ".tag" after the name must be one of its weights
    except RuntimeError as exc:
        raise UserError(f"model {name!r}: {exc} (timm.list_pretrained('{arch.split('.')[0]}*') lists them)") from None


def _check_head(head: str, num_classes: int) -> None:
    if head not in HEADS:
        raise UserError(f"head {head!r} is not supported; choose one of: {', '.join(HEADS)}")
    if head == "factorized" and num_classes != 18:
        raise UserError(f"the factorized head needs the competition's 18 classes, got {num_classes}; use head=flat")


def _new_head(head: str, in_features: int, num_classes: int) -> nn.Module:
    return FactorizedHead(in_features) if head == "factorized" else nn.Linear(in_features, num_classes)


def new_model(name: str, num_classes: int, head: str = "flat") -> nn.Module:
    """An untrained model whose head outputs ``num_classes`` logits (see FactorizedHead)."""
    check_model_name(name)
    _check_head(head, num_classes)
    if name.startswith(TIMM_PREFIX):
        return _timm_net(name, num_classes, head, pretrained=False)
    model = SmallCNN(num_classes) if name == "smallcnn" else tvm.get_model(name, weights=None, num_classes=num_classes)
    if head == "factorized":
        parent, attr = _head_parent(model, HEAD_PATH[name])
        setattr(parent, attr, FactorizedHead(getattr(parent, attr).in_features))
    return model


def _timm_net(name: str, num_classes: int, head: str, **create_kwargs) -> TimmNet:
    backbone = _timm().create_model(name.removeprefix(TIMM_PREFIX), num_classes=0, **create_kwargs)
    # Models with a pre-logits layer (MobileNetV3...) output head_hidden_size, not num_features
    # (timm >= 1.0; older timm has only num_features).
    width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return TimmNet(backbone, _new_head(head, width, num_classes))


def _head_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, attr = path.split(".")
    for p in parents:
        model = getattr(model, p)
    return model, attr


def _imagenet_enum(name: str):
    """The member of the model's weights enum to use: the first ImageNet one already in the
    hub cache (DEFAULT first), so a file fetched before is reused offline; else DEFAULT."""
    enum = TORCHVISION[name]
    for weights in (enum.DEFAULT, *enum):
        if (hub_checkpoints() / file_name(weights.url)).is_file():
            return weights
    return enum.DEFAULT


def hub_weights_path(name: str) -> Path | None:
    """Where torch.hub keeps this model's ImageNet checkpoint (whether or not it is there)."""
    if name not in TORCHVISION:
        return None
    return hub_checkpoints() / file_name(_imagenet_enum(name).url)


def load_backbone(model: nn.Module, name: str, path: Path) -> str:
    """Copy every tensor of the file ``path`` whose name and shape match; the head may differ."""
    return _copy_matching(model, name, read_state_dict(path), path)


def _copy_matching(model: nn.Module, name: str, state: dict, path: Path, origin: str = "") -> str:
    """Copy every tensor of ``state`` whose name and shape match; the message says what was loaded.

    Raises UserError when the file does not fit the model (fewer than 90 % of its tensors).
    BatchNorm's num_batches_tracked counters are not counted: older torchvision files lack them.
    """
    if isinstance(model, TimmNet) and not any(k.startswith(("backbone.", "head.")) for k in state):
        state = {"backbone." + k: v for k, v in state.items()}  # a timm model's own file
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    counted = [k for k in own if not k.endswith("num_batches_tracked")]
    matched = sum(k in fits for k in counted)
    if matched < 0.9 * len(counted):
        raise UserError(f"{path}: not a state_dict for model {name!r}: only {matched} of its {len(counted)} "
                        "tensors match by name and shape")
    model.load_state_dict(fits, strict=False)
    notes = [origin] * bool(origin) + [f"{len(counted) - matched} head tensor(s) left new"] * (matched < len(counted))
    return f"loaded weights for {name} from {path}" + (f" ({'; '.join(notes)})" if notes else "")


def _torchvision_imagenet(model: nn.Module, name: str) -> str:
    """Load torchvision's ImageNet weights the way torchvision does (hash-checked, into the hub
    cache; torch.hub downloads to a temporary file and renames it only once it is complete)."""
    weights = _imagenet_enum(name)
    folder, file = hub_checkpoints(), file_name(weights.url)
    cached, path = (folder / file).is_file(), folder / file
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            state = weights.get_state_dict(progress=False, check_hash=True, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - urllib, http.client, the hash check and torch.load raise many types
        if path.is_file():  # a failed download leaves no file: this one is there but unreadable
            raise unreadable(path, name, exc) from None
        if not is_download_error(exc):
            raise
        raise download_failed(name, file, exc, f"put the file in {folder}/") from None
    origin = "ImageNet, " + ("found in" if cached else "downloaded now into") + " the torch hub cache"
    return _copy_matching(model, name, as_state_dict(state, path), path, origin)


def _timm_pretrained(name: str, num_classes: int, head: str) -> tuple[TimmNet, str]:
    """A timm model with its default pretrained weights, loaded by timm: from the cache when they
    are there (pretrained_cfg_overlay file=, no network), else downloaded by timm."""
    cfg = _timm().models.get_pretrained_cfg(name.removeprefix(TIMM_PREFIX))
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise no_weights(name)
    cached = timm_cached_file(cfg)
    if cached is not None:
        try:
            model = _timm_net(name, num_classes, head, pretrained=True, pretrained_cfg_overlay={"file": str(cached)})
        except Exception as exc:  # noqa: BLE001 - safetensors / torch.load / load_state_dict
            raise unreadable(cached, name, exc) from None
        where = "the Hugging Face cache" if cfg.hf_hub_id else "the torch hub cache"
        return model, f"loaded weights for {name} from {cached} (ImageNet, found in {where})"
    what, fix = timm_missing(cfg)
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            if cfg.hf_hub_id:
                check_hub_reachable(cfg, DOWNLOAD_TIMEOUT_S)
            model = _timm_net(name, num_classes, head, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - httpx, urllib, huggingface_hub and torch raise many types
        if not is_download_error(exc):
            raise
        raise download_failed(name, what, exc, fix) from None
    return model, f"loaded weights for {name} from {timm_cached_file(cfg) or what} (ImageNet, downloaded now)"


def _imagenet_model(name: str, num_classes: int, head: str) -> tuple[nn.Module, str]:
    if name.startswith(TIMM_PREFIX):
        return _timm_pretrained(name, num_classes, head)
    if name not in TORCHVISION:
        raise no_weights(name)
    model = new_model(name, num_classes, head)
    return model, _torchvision_imagenet(model, name)


def resolve_weights(name: str, num_classes: int, weights: str = "auto", head: str = "flat") -> tuple[str, str]:
    """(what a fresh model of a run starts from: "imagenet", "none" or a file; one line saying so),
    decided before any other work: ImageNet weights are found in the cache or fetched now (so an
    offline ``imagenet`` fails in seconds, and ``auto`` says up front that it trains from
    scratch), and a weights file is checked to fit the model."""
    if weights in ("auto", "imagenet"):
        try:
            return "imagenet", _imagenet_model(name, num_classes, head)[1]
        except WeightsUnavailable as exc:
            if weights == "imagenet":
                raise
            return "none", exc.fallback_message
    model, note = build_model(name, num_classes, weights, head)
    return weights, note


def build_model(name: str, num_classes: int, weights: str = "auto", head: str = "flat") -> tuple[nn.Module, str]:
    """(model, one-line message saying where its weights came from). ``weights``: see the module doc."""
    check_model_name(name)
    _check_head(head, num_classes)
    if weights in ("auto", "imagenet"):
        try:
            return _imagenet_model(name, num_classes, head)
        except WeightsUnavailable as exc:
            if weights == "imagenet":
                raise
            return new_model(name, num_classes, head), exc.fallback_message
    model = new_model(name, num_classes, head)
    if weights == "none":
        return model, f"{name}: training from scratch (weights=none)"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: weights file does not exist (use --weights {', '.join(WEIGHTS)} or a file)")
    return model, load_backbone(model, name, path)
