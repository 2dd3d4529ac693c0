"""The CUDA GPU a TensorRT engine runs on, seen through torch or, where torch has no CUDA (a Jetson with the
JetPack TensorRT and pycuda but a CPU torch), through the CUDA driver via pycuda.

Only queries here: nothing creates a CUDA context (``pycuda.autoinit`` would create and make current a context of
its own, a different one from the primary context TensorRT and the runtime API use).
"""

from __future__ import annotations

import importlib.util

from depth_estimation_ros.engines.base import EngineError

NO_GPU = "no CUDA GPU found (neither torch.cuda nor pycuda sees one)"


def torch_cuda_available() -> bool:
    """True when torch imports and has a usable CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _pycuda_driver():
    """pycuda.driver initialised, or None when pycuda is missing or the driver finds no usable GPU."""
    if importlib.util.find_spec("pycuda") is None:
        return None
    try:
        import pycuda.driver as cuda
    except ImportError:  # pycuda installed but libcuda.so (the NVIDIA driver) is not
        return None
    try:
        cuda.init()
    except cuda.Error:
        return None
    return cuda


def cuda_device_count() -> int:
    """Number of CUDA GPUs visible to torch, else to the CUDA driver through pycuda; 0 when neither sees one."""
    if torch_cuda_available():
        import torch

        return int(torch.cuda.device_count())
    cuda = _pycuda_driver()
    return int(cuda.Device.count()) if cuda is not None else 0


def gpu_identity(index: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of CUDA device ``index``: the part of the engine-cache key that
    says which GPU an engine was built for."""
    count = cuda_device_count()
    if count == 0:
        raise EngineError(f"{NO_GPU}; TensorRT needs an NVIDIA GPU: use backend:=onnxruntime on this machine")
    if not 0 <= index < count:
        raise EngineError(f"CUDA device {index} requested but this machine has {count} (cuda:0..cuda:{count - 1})")
    if torch_cuda_available():
        import torch

        major, minor = torch.cuda.get_device_capability(index)
        return torch.cuda.get_device_name(index), f"{major}.{minor}"
    device = _pycuda_driver().Device(index)
    major, minor = device.compute_capability()
    return device.name(), f"{major}.{minor}"
