"""PyTorch engine: the depth network itself from a checkpoint, on CUDA (fp32/fp16, channels_last, CUDA graphs for
the fixed input shape) or on the CPU (fp32).

On CUDA, ``estimate`` keeps the frame on the device: the uint8 image is uploaded once, resized/normalised there
(torch_preprocessing, same conventions as the CPU path), the network runs (replaying a captured CUDA graph at batch
1), the depth is resampled to the output size there, and one float32 depth image is downloaded.

A network with ``predict_depth_and_std`` (LacDepth) also gives depth_std: the module then returns depth and std
stacked as channels 0 and 1 of one tensor, so the CUDA graph keeps a single static output. Its
``uncertainty_scale`` comes from the checkpoint's extra entries or the exported ONNX of the same stem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from depth_estimation_ros.engines import torch_preprocessing
from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo
from depth_estimation_ros.frame import preprocessing
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.onnx_contract.depth_onnx import (
    ENCODER_KEY,
    INPUT_HEIGHT_KEY,
    INPUT_WIDTH_KEY,
    MAX_DEPTH_KEY,
    MIN_DEPTH_KEY,
    NETWORK_KEY,
    UNCERTAINTY_SCALE_KEY,
    read_metadata,
)

CHECKPOINT_SUFFIXES = (".pt", ".pth")


def resolve_checkpoint(model_path: str | os.PathLike) -> Path:
    """A .pt/.pth checkpoint as is; for an .onnx, the checkpoint beside it with the same stem."""
    path = Path(model_path)
    if path.suffix in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint '{path}' does not exist; pass the .pt written by depth-train")
        return path
    if path.suffix == ".onnx":
        for suffix in CHECKPOINT_SUFFIXES:
            sibling = path.with_suffix(suffix)
            if sibling.is_file():
                return sibling
        raise EngineError(
            f"the torch backend runs the PyTorch network, but '{path}' is an ONNX file with no checkpoint "
            f"{path.with_suffix('.pt')} beside it; pass the .pt from depth-train, or use backend:=tensorrt / "
            "backend:=onnxruntime for the ONNX"
        )
    raise EngineError(f"'{path}' is neither a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) nor an .onnx model")


def _onnx_metadata(path: Path) -> dict[str, str]:
    return read_metadata(path) if path.is_file() else {}


def _onnx_input_size(path: Path) -> tuple[int, int] | None:
    metadata = _onnx_metadata(path)
    try:
        return int(metadata[INPUT_HEIGHT_KEY]), int(metadata[INPUT_WIDTH_KEY])
    except (KeyError, ValueError):
        return None


def checkpoint_input_size(checkpoint: Path, extra: dict) -> tuple[int, int] | None:
    """Input size recorded in the checkpoint's extra entries, else in an exported ONNX of the same stem."""
    for height_key, width_key in ((INPUT_HEIGHT_KEY, INPUT_WIDTH_KEY), ("height", "width")):
        if height_key in extra and width_key in extra:
            return int(extra[height_key]), int(extra[width_key])
    if "input_size" in extra:
        height, width = extra["input_size"]
        return int(height), int(width)
    return _onnx_input_size(checkpoint.with_suffix(".onnx"))


class _PredictDepth(nn.Module):
    """forward = predict_depth (the exported graph), or with ``with_std`` depth and std as channels 0 and 1 of one
    (N, 2, H, W) tensor; plain modules are called as they are."""

    def __init__(self, model: nn.Module, with_std: bool = False) -> None:
        super().__init__()
        self.model = model
        self.with_std = with_std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.with_std:
            return torch.cat(self.model.predict_depth_and_std(image), dim=1)
        predict = getattr(self.model, "predict_depth", None)
        return predict(image) if predict is not None else self.model(image)


class TorchEngine(DepthEngine):
    """Depth network checkpoint on CUDA (fp32/fp16) or the CPU (fp32)."""

    def __init__(
        self,
        model_path: str,
        precision: str = "fp32",
        device: str = "cuda:0",
        input_size: tuple[int, int] | None = None,
        cuda_graphs: bool = True,
        channels_last: bool = True,
        compile_model: bool = False,
        threads: int = 0,
    ) -> None:
        from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

        checkpoint = resolve_checkpoint(model_path)
        try:
            model, cfg, extra = load_depth_checkpoint(checkpoint, map_location="cpu")
        except (FileNotFoundError, ValueError) as exc:
            raise EngineError(str(exc)) from exc
        size = input_size or checkpoint_input_size(checkpoint, extra)
        if size is None:
            raise EngineError(
                f"checkpoint '{checkpoint}' does not record its input size and no {checkpoint.with_suffix('.onnx')} "
                "with input_height/input_width metadata is beside it; pass input_size (height, width)"
            )
        metadata = {
            NETWORK_KEY: cfg.network,
            ENCODER_KEY: cfg.encoder,
            MIN_DEPTH_KEY: str(cfg.min_depth),
            MAX_DEPTH_KEY: str(cfg.max_depth),
            INPUT_HEIGHT_KEY: str(size[0]),
            INPUT_WIDTH_KEY: str(size[1]),
        }
        metadata.update({k: str(v) for k, v in extra.items() if isinstance(v, (str, int, float, bool))})
        stamped = _onnx_metadata(checkpoint.with_suffix(".onnx")).get(UNCERTAINTY_SCALE_KEY)
        if stamped is not None and UNCERTAINTY_SCALE_KEY not in extra:
            metadata[UNCERTAINTY_SCALE_KEY] = stamped
        self._setup(model, size, metadata, str(checkpoint), precision, device, cuda_graphs, channels_last,
                    compile_model, threads)

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        input_size: tuple[int, int],
        metadata: dict[str, str] | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        cuda_graphs: bool = True,
        channels_last: bool = True,
        compile_model: bool = False,
        threads: int = 0,
        model_path: str = "<module>",
    ) -> TorchEngine:
        """Wrap an in-memory network (benchmarks, tests, training-time evaluation)."""
        engine = cls.__new__(cls)
        engine._setup(model, input_size, dict(metadata or {}), model_path, precision, device, cuda_graphs,
                      channels_last, compile_model, threads)
        return engine

    def _setup(
        self,
        model: nn.Module,
        input_size: tuple[int, int],
        metadata: dict[str, str],
        model_path: str,
        precision: str,
        device: str,
        cuda_graphs: bool,
        channels_last: bool,
        compile_model: bool,
        threads: int,
    ) -> None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"device '{device}' requested but CUDA is not available; use device:=cpu")
        if precision not in ("fp32", "fp16"):
            raise EngineError(
                f"the torch backend runs fp32 or fp16, not '{precision}'; INT8 needs backend:=tensorrt with a "
                "Q/DQ ONNX (depth-build-engine --precision int8)"
            )
        if precision == "fp16" and dev.type != "cuda":
            raise EngineError("fp16 with the torch backend needs a CUDA device; use precision:=fp32 on the CPU")
        if dev.type == "cpu" and threads > 0:
            torch.set_num_threads(int(threads))
        self._device = dev
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._channels_last = bool(channels_last and dev.type == "cuda")
        height, width = int(input_size[0]), int(input_size[1])
        with_std = callable(getattr(model, "predict_depth_and_std", None))
        module = _PredictDepth(model, with_std).eval().to(dev, self._dtype)
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        self._module = module
        self._forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(module) if compile_model else module
        self._use_graph = bool(cuda_graphs and dev.type == "cuda")
        self._graph: torch.cuda.CUDAGraph | None = None
        self._resizer = torch_preprocessing.DeviceAreaResizer()
        self._uploader = torch_preprocessing.FrameUploader(dev)
        self._static_input = torch.zeros((1, 3, height, width), device=dev, dtype=self._dtype)
        if self._channels_last:
            self._static_input = self._static_input.contiguous(memory_format=torch.channels_last)
        self._static_output: torch.Tensor | None = None
        self.info = EngineInfo("torch", precision, str(dev), height, width, model_path, metadata, has_std=with_std)
        self._std_scale = self.info.uncertainty_scale

    # -- inference -------------------------------------------------------------------------------------------------
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._forward(batch)

    def _capture_graph(self) -> None:
        """Warm up on a side stream, then capture one batch-1 forward into a CUDA graph (static in/out)."""
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._run(self._static_input)
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            self._static_output = self._forward(self._static_input)
        self._graph = graph

    def _infer_device(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) tensor on the engine device -> (N, 1, H, W) float32 depth on the device ((N, 2, H, W) depth
        and raw std for a model with std)."""
        if self._use_graph and batch.shape[0] == 1:
            if self._graph is None:
                self._static_input.copy_(batch)
                self._capture_graph()
            self._static_input.copy_(batch)
            self._graph.replay()
            # a copy: the static output is overwritten by the next replay
            return self._static_output.to(torch.float32, copy=True)
        batch = batch.to(self._dtype)
        if self._channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return self._run(batch).float()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise EngineError(
                f"input batch has shape {batch.shape}; this engine expects (N, {', '.join(map(str, expected))})"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
        return self._infer_device(tensor)[:, 0:1].cpu().numpy()

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.info.has_std:
            return self.infer(batch), None
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise EngineError(
                f"input batch has shape {batch.shape}; this engine expects (N, {', '.join(map(str, expected))})"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
        out = self._infer_device(tensor).cpu().numpy()
        return out[:, 0:1], out[:, 1:2] * np.float32(self._std_scale)

    def estimate(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        if self._device.type != "cuda":
            return super().estimate(rgb, output_size, timer)
        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        sync = torch.cuda.synchronize  # stage times are only honest if each stage has finished on the device
        with torch.cuda.device(self._device):  # the node calls from its worker thread, whose current device is 0
            with timer.stage("preprocess"):
                image = self._uploader(rgb)
                batch = torch_preprocessing.to_network_input(
                    image, self.info.input_height, self.info.input_width, self._resizer
                )
                sync(self._device)
            with timer.stage("inference"):
                depth = self._infer_device(batch)
                sync(self._device)
            with timer.stage("postprocess"):
                return torch_preprocessing.resize_depth(depth[:, 0:1], out_h, out_w)[0, 0].cpu().numpy()

    def estimate_with_std(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self._device.type != "cuda" or not self.info.has_std:
            return super().estimate_with_std(rgb, output_size, timer)
        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        with torch.cuda.device(self._device):
            with timer.stage("preprocess"):
                batch = torch_preprocessing.to_network_input(
                    self._uploader(rgb), self.info.input_height, self.info.input_width, self._resizer
                )
                torch.cuda.synchronize(self._device)
            with timer.stage("inference"):
                both = self._infer_device(batch)
                torch.cuda.synchronize(self._device)
            with timer.stage("postprocess"):
                # depth and std resampled together: the channels of one tensor, each bilinear on its own
                resized = torch_preprocessing.resize_depth(both, out_h, out_w)[0].cpu().numpy()
                return resized[0], resized[1] * np.float32(self._std_scale)

    def warmup(self, iterations: int = 2) -> None:
        rgb = np.full((self.info.input_height, self.info.input_width, 3), 128, dtype=np.uint8)
        for _ in range(iterations):
            if self._device.type == "cuda":
                self.estimate(rgb)
            else:
                self.infer(preprocessing.to_network_input(rgb, self.info.input_height, self.info.input_width))

    def close(self) -> None:
        self._graph = None
        self._static_output = None
