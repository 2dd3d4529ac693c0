"""ONNX Runtime engine: CPU by default, CUDA / TensorRT execution providers when the build has them."""

from __future__ import annotations

import os

import numpy as np

from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo
from depth_estimation_ros.onnx_contract.depth_onnx import (
    DEPTH_OUTPUT,
    INPUT_NAME,
    PRECISION_KEY,
    STD_OUTPUT,
    check_tensor_names,
    input_size,
)


def read_onnx_metadata(session) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


class OnnxRuntimeEngine(DepthEngine):
    """Runs an exported depth ONNX (input 'image' N,3,H,W float; output 'depth' N,1,H,W metres; optional output
    'depth_std' N,1,H,W metres)."""

    def __init__(self, model_path: str, threads: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"model file '{model_path}' does not exist; pass an exported .onnx (depth-export)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(model_path, sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load '{model_path}': {exc}") from exc
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        check_tensor_names(list(inputs), list(outputs), model_path)
        metadata = read_onnx_metadata(self._session)
        height, width = input_size(inputs[INPUT_NAME].shape, metadata, model_path)
        elem = inputs[INPUT_NAME].type
        self._input_dtype = np.float16 if "float16" in elem else np.float32
        precision = metadata.get(PRECISION_KEY, "fp16" if self._input_dtype == np.float16 else "fp32")
        device = "cuda" if chosen[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        self.info = EngineInfo("onnxruntime", precision, device, height, width, model_path, metadata,
                               has_std=STD_OUTPUT in outputs)
        self._std_scale = self.info.uncertainty_scale
        self.providers = chosen

    def _run(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise EngineError(
                f"input batch has shape {batch.shape}; this engine expects (N, {', '.join(map(str, expected))})"
            )
        outs = self._session.run(names, {INPUT_NAME: batch.astype(self._input_dtype, copy=False)})
        return [out.astype(np.float32, copy=False) for out in outs]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, [DEPTH_OUTPUT])[0]

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.info.has_std:
            return self.infer(batch), None
        depth, std = self._run(batch, [DEPTH_OUTPUT, STD_OUTPUT])
        return depth, std * np.float32(self._std_scale)
