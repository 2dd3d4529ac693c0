"""preprocessing.py on torch tensors, so GPU engines keep the whole frame on the device.

Same conventions as the CPU path (OpenCV): area interpolation when the image shrinks, bilinear (half-pixel centres)
when it grows, the resized uint8 image rounded like OpenCV's uint8 output, then scaled to [0, 1]; depth is resampled
bilinearly. OpenCV's INTER_AREA is a box filter with fractional coverage at the box edges; it is a separable linear
map, applied here as two small matrix products (exact for any ratio, unlike torch's 'area' mode, which is
adaptive average pooling and differs for non-integer ratios).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=32)
def area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) float64 matrix of OpenCV INTER_AREA weights for shrinking ``src`` samples to ``dst``."""
    if not 0 < dst <= src:
        raise ValueError(f"area weights shrink: need 0 < dst <= src, got src={src}, dst={dst}")
    scale = src / dst
    weights = np.zeros((dst, src), dtype=np.float64)
    for i in range(dst):
        start, end = i * scale, (i + 1) * scale
        for j in range(int(np.floor(start)), min(int(np.ceil(end)), src)):
            weights[i, j] = min(end, j + 1) - max(start, j)
    return weights / weights.sum(axis=1, keepdims=True)


class DeviceAreaResizer:
    """Cached per (source size, device) weight matrices for the area resize of an (N, C, H, W) float tensor."""

    def __init__(self) -> None:
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, images: torch.Tensor, height: int, width: int) -> torch.Tensor:
        key = (images.shape[-2], images.shape[-1], height, width, images.device, images.dtype)
        if key not in self._cache:
            rows = torch.from_numpy(area_weights(images.shape[-2], height)).to(images.device, images.dtype)
            cols = torch.from_numpy(area_weights(images.shape[-1], width)).to(images.device, images.dtype)
            self._cache[key] = (rows, cols.T.contiguous())
        rows, cols_t = self._cache[key]
        return torch.matmul(torch.matmul(rows, images), cols_t)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")


def rgb_to_tensor(rgb: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """HxWx3 uint8 -> (1, 3, H, W) uint8 on ``device`` (one upload, no conversion on the host). For a stream of
    frames to a GPU use FrameUploader, which does not pin memory per frame."""
    _check_rgb(rgb)
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1).unsqueeze(0)


class FrameUploader:
    """Uploads HxWx3 uint8 frames to a CUDA device through one reused page-locked buffer.

    Pinning memory per frame costs a page-locked allocation each time; here the buffer is allocated once per frame
    size, and an event recorded after each copy guards it: the next frame waits for the previous copy before
    overwriting the buffer. On a CPU device it is rgb_to_tensor.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._host: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __call__(self, rgb: np.ndarray) -> torch.Tensor:
        """(1, 3, H, W) uint8 on the device; the copy is queued on the current stream."""
        if self.device.type != "cuda":
            return rgb_to_tensor(rgb, self.device)
        _check_rgb(rgb)
        if self._host is None or tuple(self._host.shape) != rgb.shape:
            self._host = torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True)
            self._copied = None
        if self._copied is not None:
            self._copied.synchronize()
        self._host.numpy()[...] = rgb
        image = self._host.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        # the stream the copy went to: the current one of *this* device (a worker thread's current device is 0)
        self._copied.record(torch.cuda.current_stream(self.device))
        return image.permute(2, 0, 1).unsqueeze(0)


def to_network_input(
    image_u8: torch.Tensor, height: int, width: int, resizer: DeviceAreaResizer | None = None
) -> torch.Tensor:
    """(1, 3, H, W) uint8 tensor -> (1, 3, height, width) float32 in [0, 1] on the same device."""
    image = image_u8.float()
    src_h, src_w = image.shape[-2:]
    if (src_h, src_w) != (height, width):
        if height * width < src_h * src_w and height <= src_h and width <= src_w:
            image = (resizer or DeviceAreaResizer())(image, height, width)
        else:
            image = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)
        image = image.add_(0.5).floor_().clamp_(0.0, 255.0)  # OpenCV returns uint8: round half up like it
    return (image * (1.0 / 255.0)).contiguous()


def resize_depth(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 1, h, w) depth -> (N, 1, height, width), bilinear with half-pixel centres (OpenCV INTER_LINEAR)."""
    if tuple(depth.shape[-2:]) == (height, width):
        return depth.float()
    return F.interpolate(depth.float(), size=(height, width), mode="bilinear", align_corners=False)
