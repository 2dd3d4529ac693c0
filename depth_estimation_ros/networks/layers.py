"""Small building blocks shared by the depth and pose networks.

Everything here exports to plain ONNX ops TensorRT 10 supports: Conv with zero or replicate ("edge") padding,
Elu/Relu, Resize (bilinear, half_pixel), AveragePool. No reflection padding, no custom autograd.

Zero padding is folded into the Conv node; replicate padding exports as a separate Pad node (an extra memory pass on
the CPU). ReLU after a Conv is fused into it by ONNX Runtime and TensorRT; ELU is a separate element-wise pass in
ONNX Runtime (see docs/networks.md, "Speed").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


REC601_LUMA = (0.299, 0.587, 0.114)


def luminance_rgb(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> its Rec. 601 luma repeated in three channels: the grey image a mono camera gives."""
    weights = image.new_tensor(REC601_LUMA).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True).expand_as(image)


class ImageNormalization(nn.Module):
    """RGB in [0, 1] -> ImageNet-normalised input; repeated per frame for stacked frames (6 channels for pairs).

    ``luminance``: the image is reduced to its luma first, so a network trained on grey frames (KITTI odometry) sees
    a colour camera's frames as the grey frames it learnt from. A flag, no parameters: the state_dict is unchanged.
    """

    def __init__(self, frames: int = 1, luminance: bool = False) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN * frames).view(1, 3 * frames, 1, 1)
        std = torch.tensor(IMAGENET_STD * frames).view(1, 3 * frames, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if luminance and frames != 1:
            raise ValueError("luminance input is for single frames (depth networks), not stacked pairs")
        self.luminance = luminance

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.luminance:
            image = luminance_rgb(image)
        return (image - self.mean) / self.std


def conv3x3(
    in_ch: int, out_ch: int, dilation: int = 1, padding_mode: str = "replicate", bias: bool = True
) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode, bias=bias)


def conv1x1(in_ch: int, out_ch: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, bias=bias)


class ConvELU(nn.Module):
    """3x3 convolution (replicate padding) followed by ELU, the monodepth2-style decoder block."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1, padding_mode: str = "replicate") -> None:
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch, dilation=dilation, padding_mode=padding_mode)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ConvReLU(nn.Module):
    """3x3 convolution with zero padding followed by ReLU: the fused, cheap decoder block of LacDepth and GATDepth."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch, dilation=dilation, padding_mode="zeros")
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (half-pixel centres, the ONNX Resize mode TensorRT supports)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to an explicit (h, w); identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def check_input_size(image: torch.Tensor, multiple: int = 32) -> None:
    """Depth networks need (N, 3, H, W) with H and W multiples of 32 (five stride-2 stages)."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) RGB tensor in [0, 1], got shape {tuple(image.shape)}")
    h, w = int(image.shape[-2]), int(image.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(
            f"input height and width must be multiples of {multiple}, got {h}x{w}; resize the image to e.g. "
            f"{max(multiple, round(h / multiple) * multiple)}x{max(multiple, round(w / multiple) * multiple)}"
        )
