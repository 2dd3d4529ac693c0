"""TensorRT runtime: ``TensorRTEngine(prepare_engine(...))`` (tensorrt_prepare) runs a prepared engine.

``execute_async_v3`` with tensor addresses set by name once, on preallocated device buffers: torch CUDA tensors when
torch has CUDA (then pre/post-processing also run on the GPU), else pycuda page-locked host buffers, device buffers
and a stream in the device's primary context (the one TensorRT's runtime API uses). The engine is loaded in one
thread and run in another (the node's worker), so every call makes the engine's device (torch) or context (pycuda)
current in the calling thread first. Nothing is allocated per frame.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo
from depth_estimation_ros.engines.cuda_device import torch_cuda_available
from depth_estimation_ros.engines.tensorrt_build import (
    PreparedEngine,
    collecting_logger,
    device_index,
    import_tensorrt,
)
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.onnx_contract.depth_onnx import (
    DEPTH_OUTPUT,
    INPUT_NAME,
    STD_OUTPUT,
    read_metadata,
)


class TensorRTEngine(DepthEngine):
    """Runs a prepared (built or cached) TensorRT engine; batch 1 profile, larger batches run frame by frame."""

    def __init__(self, prepared: PreparedEngine) -> None:
        trt = import_tensorrt()
        model_path = str(prepared.source_onnx)
        metadata = read_metadata(model_path)
        metadata.update({"engine_path": str(prepared.engine_path), "tensorrt_version": prepared.key.tensorrt_version})
        if prepared.gate is not None:
            metadata["accuracy_gate_abs_rel"] = f"{prepared.gate.abs_rel:.5f}"
        if prepared.notes:
            metadata["engine_notes"] = "; ".join(prepared.notes)
        index = device_index(prepared.device)
        self._buffers = _TorchBuffers(index) if torch_cuda_available() else _PycudaBuffers(index)
        try:
            with self._buffers.active():
                self._logger = collecting_logger(trt, trt.ILogger.Severity.WARNING)
                self._runtime = trt.Runtime(self._logger)
                self._engine = self._runtime.deserialize_cuda_engine(prepared.engine_bytes)
                if self._engine is None:
                    raise EngineError(
                        f"TensorRT {trt.__version__} cannot deserialize the engine '{prepared.engine_path}' for "
                        f"'{model_path}' ({'; '.join(self._logger.errors) or 'built by another TensorRT or GPU?'}); "
                        "delete it or run depth-build-engine --force"
                    )
                self._context = self._engine.create_execution_context()
                names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
                inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
                outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
                if inputs != [INPUT_NAME] or DEPTH_OUTPUT not in outputs:
                    raise EngineError(
                        f"engine for '{model_path}' has inputs {inputs} and outputs {outputs}; expected '{INPUT_NAME}' "
                        f"-> '{DEPTH_OUTPUT}'"
                    )
                shape = tuple(self._engine.get_tensor_shape(INPUT_NAME))
                if -1 in shape:  # dynamic batch in the ONNX: the profile pins it to 1
                    shape = tuple(self._engine.get_tensor_profile_shape(INPUT_NAME, 0)[1])
                self._context.set_input_shape(INPUT_NAME, shape)
                shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in names}
                dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
                self._buffers.allocate(shapes, dtypes)
                for name in names:
                    self._context.set_tensor_address(name, self._buffers.address(name))
        except Exception:  # give the device memory and (pycuda) the retained context back
            self._context = self._engine = None
            self._buffers.release()
            raise
        self.info = EngineInfo("tensorrt", prepared.precision, f"cuda:{index}", int(shape[2]), int(shape[3]),
                               model_path, metadata, has_std=STD_OUTPUT in outputs)
        self._std_scale = self.info.uncertainty_scale

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._buffers.stream_handle):
            raise EngineError(f"TensorRT execution failed for '{self.info.model_path}'")

    def _run(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise EngineError(
                f"input batch has shape {batch.shape}; this engine expects (N, {', '.join(map(str, expected))})"
            )
        frames: list[list[np.ndarray]] = [[] for _ in names]
        with self._buffers.active():
            for frame in batch:
                self._buffers.upload(INPUT_NAME, frame[None])
                self._execute()
                for out, name in zip(frames, names):
                    out.append(self._buffers.download(name))
        return [np.concatenate(out, axis=0).astype(np.float32, copy=False) for out in frames]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, (DEPTH_OUTPUT,))[0]

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.info.has_std:
            return self.infer(batch), None
        depth, std = self._run(batch, (DEPTH_OUTPUT, STD_OUTPUT))
        return depth, std * np.float32(self._std_scale)

    def estimate(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        if not isinstance(self._buffers, _TorchBuffers):
            return super().estimate(rgb, output_size, timer)  # pycuda only: pre/post on the CPU
        import torch

        from depth_estimation_ros.engines import torch_preprocessing

        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        stream = self._buffers.stream
        with self._buffers.active(), torch.cuda.stream(stream):
            with timer.stage("preprocess"):
                image = self._buffers.uploader(rgb)
                batch = torch_preprocessing.to_network_input(
                    image, self.info.input_height, self.info.input_width, self._buffers.resizer
                )
                self._buffers.tensors[INPUT_NAME].copy_(batch)
                stream.synchronize()
            with timer.stage("inference"):
                self._execute()
                stream.synchronize()
            with timer.stage("postprocess"):
                depth = self._buffers.tensors[DEPTH_OUTPUT].float()
                return torch_preprocessing.resize_depth(depth, out_h, out_w)[0, 0].cpu().numpy()

    def estimate_with_std(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(self._buffers, _TorchBuffers) or not self.info.has_std:
            return super().estimate_with_std(rgb, output_size, timer)
        import torch

        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        depth = self.estimate(rgb, output_size, timer)  # leaves this frame's depth_std in its device buffer
        with self._buffers.active(), torch.cuda.stream(self._buffers.stream), timer.stage("postprocess"):
            from depth_estimation_ros.engines import torch_preprocessing

            std = self._buffers.tensors[STD_OUTPUT].float()
            resized = torch_preprocessing.resize_depth(std, out_h, out_w)[0, 0].cpu().numpy()
        return depth, resized * np.float32(self._std_scale)

    def close(self) -> None:
        """Release the execution context and engine (in their device context), then the buffers."""
        if getattr(self, "_context", None) is None:
            return
        with self._buffers.active():
            self._context = None
            self._engine = None
        self._buffers.release()


class _TorchBuffers:
    """Preallocated torch CUDA tensors per I/O tensor and a torch CUDA stream, on one device."""

    def __init__(self, index: int) -> None:
        import torch

        from depth_estimation_ros.engines.torch_preprocessing import DeviceAreaResizer, FrameUploader

        self.device = torch.device(f"cuda:{index}")
        self.stream = torch.cuda.Stream(self.device)
        self.stream_handle = self.stream.cuda_stream
        self.resizer = DeviceAreaResizer()
        self.uploader = FrameUploader(self.device)
        self.tensors: dict = {}
        self._host: dict = {}

    def active(self):
        """Make this device current in the calling thread (TensorRT runs on the current device)."""
        import torch

        return torch.cuda.device(self.device)

    def allocate(self, shapes: dict[str, tuple], dtypes: dict[str, np.dtype]) -> None:
        import torch

        for name, shape in shapes.items():
            dtype = torch.from_numpy(np.empty(0, dtypes[name])).dtype
            self.tensors[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self._host[name] = torch.empty(shape, dtype=dtype).pin_memory()

    def address(self, name: str) -> int:
        return int(self.tensors[name].data_ptr())

    def upload(self, name: str, array: np.ndarray) -> None:
        import torch

        self._host[name].copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=self._host[name].numpy().dtype)))
        with torch.cuda.stream(self.stream):
            self.tensors[name].copy_(self._host[name], non_blocking=True)

    def download(self, name: str) -> np.ndarray:
        import torch

        with torch.cuda.stream(self.stream):
            self._host[name].copy_(self.tensors[name], non_blocking=True)
        self.stream.synchronize()
        return self._host[name].numpy().copy()

    def release(self) -> None:
        self.tensors.clear()
        self._host.clear()


class _PycudaBuffers:
    """Page-locked host buffers, device buffers and a stream from pycuda, in the device's primary context."""

    def __init__(self, index: int) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError as exc:
            raise EngineError("the TensorRT runtime needs torch with CUDA or pycuda; pip install pycuda") from exc
        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(index).retain_primary_context()
        with self.active():
            self.stream = cuda.Stream()
        self.stream_handle = self.stream.handle
        self._host: dict = {}
        self._device: dict = {}

    @contextmanager
    def active(self):
        """Push the primary context on the calling thread for the duration (pycuda calls need a current context)."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def allocate(self, shapes: dict[str, tuple], dtypes: dict[str, np.dtype]) -> None:
        with self.active():
            for name, shape in shapes.items():
                self._host[name] = self._cuda.pagelocked_empty(shape, dtypes[name])
                self._device[name] = self._cuda.mem_alloc(self._host[name].nbytes)

    def address(self, name: str) -> int:
        return int(self._device[name])

    def upload(self, name: str, array: np.ndarray) -> None:
        np.copyto(self._host[name], array, casting="same_kind")
        self._cuda.memcpy_htod_async(self._device[name], self._host[name], self.stream)

    def download(self, name: str) -> np.ndarray:
        self._cuda.memcpy_dtoh_async(self._host[name], self._device[name], self.stream)
        self.stream.synchronize()
        return self._host[name].copy()

    def release(self) -> None:
        with self.active():
            for buffer in self._device.values():
                buffer.free()
            self._device.clear()
            self._host.clear()
            self.stream = None
        self._context.detach()
