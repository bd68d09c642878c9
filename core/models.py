"""Model zoo: torchvision backbones with a head for this dataset's classes, plus a small CNN.

ImageNet weights are used only when they are already on disk: in torch's hub cache
(``torch.hub.get_dir()/checkpoints/<file>``, where ``torch.hub`` would have saved them) or a
file given as ``weights``. Nothing here touches the network; without weights a model trains
from scratch and the returned message says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn
import torchvision.models as tvm

from core.errors import UserError

# name -> torchvision weights enum (for the file name of its ImageNet checkpoint)
TORCHVISION = {
    "resnet18": tvm.ResNet18_Weights,
    "resnet50": tvm.ResNet50_Weights,
    "resnext50_32x4d": tvm.ResNeXt50_32X4D_Weights,
    "densenet121": tvm.DenseNet121_Weights,
    "vgg16_bn": tvm.VGG16_BN_Weights,
    "efficientnet_b0": tvm.EfficientNet_B0_Weights,
}
MODELS = ("smallcnn", *TORCHVISION)
HEADS = ("flat", "factorized")
# Where each family keeps its final Linear layer (the head), as an attribute path.
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

    About 70M multiply-adds for a 96x96 input (resnet18 at 96x128: ~450M) and 0.5M
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


def check_model_name(name: str) -> None:
    if name not in MODELS:
        raise UserError(f"model {name!r} is not supported; choose one of: {', '.join(MODELS)}")


def new_model(name: str, num_classes: int, head: str = "flat") -> nn.Module:
    """An untrained model whose head outputs ``num_classes`` logits (see FactorizedHead)."""
    check_model_name(name)
    if head not in HEADS:
        raise UserError(f"head {head!r} is not supported; choose one of: {', '.join(HEADS)}")
    if head == "factorized" and num_classes != 18:
        raise UserError(f"the factorized head needs the competition's 18 classes, got {num_classes}; use head=flat")
    model = SmallCNN(num_classes) if name == "smallcnn" else tvm.get_model(name, weights=None, num_classes=num_classes)
    if head == "factorized":
        parent, attr = _head_parent(model, HEAD_PATH[name])
        setattr(parent, attr, FactorizedHead(getattr(parent, attr).in_features))
    return model


def _head_parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, attr = path.split(".")
    for p in parents:
        model = getattr(model, p)
    return model, attr


def hub_weights_path(name: str) -> Path | None:
    """Where torch.hub keeps this model's ImageNet checkpoint (whether or not it is there)."""
    if name not in TORCHVISION:
        return None
    url = TORCHVISION[name].IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


# Old DenseNet checkpoints name layers "norm.1" where the module is "norm1" (see torchvision).
_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _clean_keys(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")  # saved from DataParallel / DDP
        m = _DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _read_state_dict(path: Path) -> dict:
    """Tensors from a weights file, loaded without running any code from it."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign files
        raise UserError(f"{path}: not a PyTorch weights file that can be loaded safely "
                        f"({exc.__class__.__name__}); pass a state_dict saved with torch.save") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # one of our checkpoints: take its model
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: not a state_dict (a mapping of parameter names to tensors)")
    return _clean_keys(obj)


def load_backbone(model: nn.Module, name: str, path: Path) -> str:
    """Copy every tensor of ``path`` whose name and shape match; the head may differ.

    Raises UserError when the file does not fit the model (fewer than 90 % of its tensors).
    """
    state = _read_state_dict(path)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fits) < 0.9 * len(own):
        raise UserError(f"{path}: not a state_dict for model {name!r}: only {len(fits)} of its {len(own)} "
                        "tensors match by name and shape")
    model.load_state_dict(fits, strict=False)
    skipped = len(own) - len(fits)
    return f"loaded weights for {name} from {path}" + (f" ({skipped} head tensor(s) left new)" if skipped else "")


def build_model(name: str, num_classes: int, weights: str = "auto", head: str = "flat") -> tuple[nn.Module, str]:
    """(model, message). ``weights``: auto (ImageNet from the hub cache if present), none, or a file."""
    model = new_model(name, num_classes, head)
    if weights == "none":
        return model, f"{name}: training from scratch (weights=none)"
    if weights == "auto":
        path = hub_weights_path(name)
        if path is None:
            return model, f"{name}: no pretrained weights exist for this model; training from scratch"
        if not path.is_file():
            return model, (f"{name}: ImageNet weights not found at {path} (nothing is downloaded); "
                           "training from scratch")
        return model, load_backbone(model, name, path)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: weights file does not exist (use --weights auto, none or a file)")
    return model, load_backbone(model, name, path)
