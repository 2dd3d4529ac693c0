"""ONNX Runtime engine: CPU by default, CUDA / TensorRT execution providers when the build has them."""

from __future__ import annotations

import os

import numpy as np

from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
STD_OUTPUT_NAME = "depth_std"


def read_onnx_metadata(session) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


class OnnxRuntimeEngine(DepthEngine):
    """Runs an exported depth ONNX (input 'image' N,3,H,W float; output 'depth' N,1,H,W metres; optional output
    'depth_std' N,1,H,W metres)."""

    def __init__(self, model_path: str, threads: int = 0, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        if not os.path.isfile(model_path):
            raise EngineError(f"model file '{model_path}' does not exist; pass an exported .onnx (depth-export)")
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
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise EngineError(
                f"'{model_path}' has inputs {list(inputs)} and outputs {list(outputs)}; expected input "
                f"'{INPUT_NAME}' and output '{OUTPUT_NAME}'. Re-export it with depth-export."
            )
        shape = inputs[INPUT_NAME].shape
        metadata = read_onnx_metadata(self._session)
        try:
            height = int(shape[2]) if isinstance(shape[2], int) else int(metadata["input_height"])
            width = int(shape[3]) if isinstance(shape[3], int) else int(metadata["input_width"])
        except (KeyError, IndexError, ValueError) as exc:
            raise EngineError(
                f"'{model_path}' input '{INPUT_NAME}' has shape {shape}; expected (N, 3, H, W) with static H, W "
                "or input_height/input_width in the model metadata. Re-export it with depth-export."
            ) from exc
        elem = inputs[INPUT_NAME].type
        self._input_dtype = np.float16 if "float16" in elem else np.float32
        precision = metadata.get("precision", "fp16" if self._input_dtype == np.float16 else "fp32")
        device = "cuda" if chosen[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        self.info = EngineInfo("onnxruntime", precision, device, height, width, model_path, metadata,
                               has_std=STD_OUTPUT_NAME in outputs)
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
        return self._run(batch, [OUTPUT_NAME])[0]

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.info.has_std:
            return self.infer(batch), None
        depth, std = self._run(batch, [OUTPUT_NAME, STD_OUTPUT_NAME])
        return depth, std * np.float32(self._std_scale)
