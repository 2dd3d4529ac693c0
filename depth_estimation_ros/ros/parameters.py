"""The node's parameters: declarations with descriptors, and the plain settings object they produce."""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from depth_estimation_ros.engines.accuracy_gate import DEFAULT_ABS_REL_BOUND, ON_FAIL_CHOICES
from depth_estimation_ros.engines.factory import BACKENDS, INT8_FLOAT_CHOICES, INT8_SCOPES
from depth_estimation_ros.messages.image_codec import DEFAULT_MAX_IMAGE_PIXELS
from depth_estimation_ros.pipeline.depth_frame_processor import OUTPUT_RESOLUTIONS, ProcessorSettings

RELIABILITIES = ("reliable", "best_effort")


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: object
    description: str
    read_only: bool = True
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                 float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
        text = self.description + (f" One of: {', '.join(self.choices)}." if self.choices else "")
        d = ParameterDescriptor(name=self.name, type=types[type(self.default)], description=text,
                                read_only=self.read_only)
        if self.int_range:
            d.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.float_range:
            d.floating_point_range = [FloatingPointRange(from_value=self.float_range[0],
                                                         to_value=self.float_range[1], step=0.0)]
        return d


PARAMETERS = (
    ParameterSpec("model", "lacdepth", "Bundled model name (lacdepth, lacdepth_indoor, gatdepth) or path to an "
                  "exported .onnx."),
    ParameterSpec("backend", "auto", "Inference backend; auto = TensorRT if available, else torch CUDA, else "
                  "ONNX Runtime CPU.", choices=BACKENDS),
    ParameterSpec("precision", "fp32", "Engine precision (TensorRT / torch CUDA).", choices=("fp32", "fp16", "int8")),
    ParameterSpec("device", "cuda:0", "GPU device for the torch / TensorRT backends."),
    ParameterSpec("threads", 0, "ONNX Runtime intra-op threads (0 = all cores).", int_range=(0, 256)),
    ParameterSpec("engine_cache_dir", "", "TensorRT engine cache folder ('' = ~/.cache/depth_estimation_ros/engines); "
                  "an engine is built on first start when none matches the model, TensorRT, GPU and precision."),
    ParameterSpec("calibration", "", "Image folder or rosbag of camera frames for TensorRT INT8 calibration and the "
                  "fp16/INT8 accuracy gate ('' = none)."),
    ParameterSpec("calibration_topic", "", "Image topic in the calibration rosbag (needed when it has several)."),
    ParameterSpec("accuracy_bound", 0.01, "Largest abs_rel of an fp16/INT8 engine against the fp32 model on the "
                  "calibration frames.", float_range=(0.0, 1.0)),
    ParameterSpec("on_gate_fail", "refuse", "When the accuracy gate fails: refuse to start, or fall back to fp32.",
                  choices=("refuse", "fallback")),
    ParameterSpec("self_test", True, "At start (configure), run the model's reference frame through the engine and "
                  "compare with the fp32 ONNX Runtime depth stored in the model."),
    ParameterSpec("self_test_bound", DEFAULT_ABS_REL_BOUND, "Largest abs_rel of the engine's depth on the reference "
                  "frame against the stored fp32 reference (any NaN/Inf fails regardless).", float_range=(1e-6, 1.0)),
    ParameterSpec("on_self_test_fail", "refuse", "When the self-test fails: refuse to start, or fall back to fp32 "
                  "ONNX Runtime on the model's ONNX.", choices=ON_FAIL_CHOICES),
    ParameterSpec("int8_scope", "decoder", "TensorRT INT8: quantize the decoder and heads only (the image encoder, "
                  "where INT8 loses accuracy, stays float) or all learned layers.", choices=INT8_SCOPES),
    ParameterSpec("int8_float", "auto", "TensorRT INT8: precision of the layers left unquantized; auto = fp16 when "
                  "ModelOpt quantizes, fp32 with ONNX Runtime's quantizer.", choices=INT8_FLOAT_CHOICES),
    ParameterSpec("input_width", 0, "Network input width; 0 = the model's own (static models must match).",
                  int_range=(0, 8192)),
    ParameterSpec("input_height", 0, "Network input height; 0 = the model's own.", int_range=(0, 8192)),
    ParameterSpec("min_depth", ProcessorSettings.min_depth, "Depths closer than this are published as -Inf "
                  "(metres).", read_only=False, float_range=(0.001, 1000.0)),
    ParameterSpec("max_depth", ProcessorSettings.max_depth, "Depths at or beyond this are published as +Inf "
                  "(metres).", read_only=False, float_range=(0.01, 10000.0)),
    ParameterSpec("output_resolution", "model", "Resolution of depth/image and points: the network input size "
                  "(model) or the camera image size (input).", read_only=False, choices=OUTPUT_RESOLUTIONS),
    ParameterSpec("cloud_decimation", 1, "Keep every n-th row and column in the point cloud.", read_only=False,
                  int_range=(1, 32)),
    ParameterSpec("cloud_color", True, "Add packed rgb to the point cloud (point_step 32 instead of 16).",
                  read_only=False),
    ParameterSpec("max_relative_uncertainty", 0.0, "Set depth (and cloud points) to NaN where the model's per-pixel "
                  "uncertainty exceeds this fraction of the depth (std / depth; LacDepth's depth_std); 0 = off. "
                  "Models without depth_std ignore it.", read_only=False, float_range=(0.0, 100.0)),
    ParameterSpec("image_transport", "raw", "Subscribe to 'image' (sensor_msgs/Image) or 'image/compressed' "
                  "(sensor_msgs/CompressedImage, jpeg/png).", choices=("raw", "compressed")),
    ParameterSpec("sync_mode", "exact", "Pair images with CameraInfo of the identical stamp (exact) or with the "
                  "latest CameraInfo (latest).", choices=("exact", "latest")),
    ParameterSpec("camera_info_max_age", 1.0, "latest sync: maximum age of the CameraInfo relative to the image "
                  "stamp in seconds (0 = any age).", float_range=(0.0, 3600.0)),
    ParameterSpec("camera_info_timeout", 2.0, "Report an error when images arrive without any usable CameraInfo "
                  "for this long (seconds).", float_range=(0.1, 3600.0)),
    ParameterSpec("qos.input.reliability", "best_effort", "Subscriptions' reliability (sensor data QoS by "
                  "default).", choices=RELIABILITIES),
    ParameterSpec("qos.input.depth", 5, "Subscriptions' history depth.", int_range=(1, 1000)),
    ParameterSpec("qos.output.reliability", "reliable", "Publishers' reliability.", choices=RELIABILITIES),
    ParameterSpec("qos.output.depth", 1, "Publishers' history depth.", int_range=(1, 1000)),
    ParameterSpec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS, "Largest compressed image (width x height, read "
                  "from its PNG / JPEG header before decoding) the node decodes; larger ones are refused as a "
                  "decompression bomb.", read_only=False, int_range=(1, 2**31 - 1)),
    ParameterSpec("throughput_warn_ratio", 0.5, "Diagnostics WARN when the node processes less than this fraction "
                  "of the paired input rate over the rate window (frames dropped to keep latency bounded); 0 = "
                  "off.", read_only=False, float_range=(0.0, 1.0)),
    ParameterSpec("diagnostics_period", 1.0, "Seconds between diagnostics messages.", float_range=(0.05, 60.0)),
)

DYNAMIC = {p.name for p in PARAMETERS if not p.read_only}


def check_choice(name: str, value: object) -> str | None:
    """An error message when a string parameter is outside its choices, else None."""
    spec = next(p for p in PARAMETERS if p.name == name)
    if spec.choices and value not in spec.choices:
        return f"parameter '{name}' is '{value}'; choose one of {', '.join(spec.choices)}"
    return None


def processor_settings(values: dict[str, object]) -> ProcessorSettings:
    settings = ProcessorSettings(
        min_depth=float(values["min_depth"]),
        max_depth=float(values["max_depth"]),
        output_resolution=str(values["output_resolution"]),
        cloud_decimation=int(values["cloud_decimation"]),
        cloud_color=bool(values["cloud_color"]),
        max_relative_uncertainty=float(values["max_relative_uncertainty"]),
    )
    settings.validate()
    return settings
