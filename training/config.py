"""Training configuration (YAML under training/configs/): one flat dataclass, validated on load."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from depth_estimation_ros.errors import ConfigurationError


class ConfigError(ConfigurationError):
    """The training configuration is invalid; the message names the key and the fix."""


def _resolve_validation_spec(spec: str, base_dir: Path) -> str:
    """A validation set's folders made absolute relative to the config file (see validation.py for the forms)."""
    def absolute(path: str) -> str:
        return path if Path(path).is_absolute() else str((base_dir / path).resolve())

    if spec.startswith("sfm:"):
        return "sfm:" + ",".join(absolute(p) for p in spec[len("sfm:"):].split(","))
    folder, at, frames = spec.partition("@")
    return absolute(folder) + at + frames


@dataclass
class TrainConfig:
    sequences: list[str] = field(default_factory=list)  # sequence folders (relative paths: to the config file)
    # "<sequence name> <frame index>" lines: the frames that may be used; one file or a list (one per set)
    split_file: str | list[str] | None = None
    # how often each sequence's samples occur per epoch, one count per entry of sequences (None: once each): keeps a
    # small set from being drowned by a large one
    sequence_repeats: list[int] | None = None
    # frames per source offset, one count per entry of sequences (None: 1 each): a 30 Hz hand-held sequence with 3
    # takes its sources 3 frames away for the same source_offsets, a wider baseline for the photometric loss
    source_strides: list[int] | None = None
    # networks
    network: str = "lacdepth"
    encoder: str = "efficientnet_lite0"
    pretrained: bool = True
    luminance_input: bool = False  # the network sees luma only (trained on grey frames, run on colour cameras)
    num_bins: int = 64  # LacDepth's depth bins
    metric_stride: int = 2  # LacDepth's metric stage at stride 2 or 4 (DepthNetworkConfig)
    gat_min_stride: int = 1  # GATDepth's finest decoder stride with graph attention (DepthNetworkConfig)
    # GATDepth's attention: GAT's pairwise scores, neighbour-only gates ("pooled"), those without normalisation
    # ("gated") or one normalised gate per pixel ("shared")
    gat_attention: str = "pairwise"
    gat_pooled_max_stride: int = 16  # with gat_attention "pooled", "gated" or "shared": coarser stages keep pairwise
    gat_gated_max_stride: int = 0  # stages up to this stride get the gated block whatever gat_attention says (0: none)
    gat_window: int = 3  # GATDepth's attention window (k x k)
    min_depth: float = 0.1
    max_depth: float = 80.0
    # depth_model.pt of a finished run to start from instead of ImageNet (fine-tuning, e.g. at a higher resolution);
    # its network layout must equal this config's (relative path: to the config file)
    init_weights: str | None = None
    # colmap (GasMono: AlignNet + residual PoseNet) | posenet (monodepth2 baseline) | fixed (COLMAP poses as they are)
    pose_mode: str = "colmap"
    pose_encoder: str = "resnet18"
    # data
    height: int = 192
    width: int = 640
    source_offsets: list[int] = field(default_factory=lambda: [-1, 1])
    flip: bool = True
    color_jitter: list[float] | None = field(default_factory=lambda: [0.2, 0.2, 0.2, 0.1])
    # random zoom: a window 1/z of each sample's frames, z uniform in [1, zoom_max], depths and translations / z
    # (dataset.zoom_window); 1 = none
    zoom_max: float = 1.0
    batch_size: int = 12
    num_workers: int = 4
    # optimisation
    steps: int = 20000
    lr: float = 1e-4
    lr_final: float = 1e-5
    # the depth network's encoder learns at lr x this (0.1 kept ImageNet closer and was worse: docs/training.md)
    encoder_lr_scale: float = 1.0
    weight_decay: float = 1e-4
    # exponential moving average of the depth network's weights (0: off): validation, depth_model.pt and the ONNX
    # export use the average, w_avg <- decay w_avg + (1 - decay) w after every step
    ema_decay: float = 0.0
    grad_clip: float = 10.0
    # losses
    ssim_alpha: float = 0.85
    automask: bool = True
    num_scales: int = 4
    mlda_reweighting: bool = False
    rotation_refine_weight: float = 0.2  # GasMono beta
    smoothness_weight: float = 0.001  # GasMono lambda / monodepth2
    curvature_weight: float = 0.001  # GCNDepth second-order term
    isd_weight: float = 0.1  # GasMono mu
    isd_iterations: int = 1  # inner iterations per batch carrying the per-pixel best depth
    silog_weight: float = 1.0
    gradient_weight: float = 0.1
    gradient_warmup_steps: int = 2000
    sfm_depth_weight: float = 0.0  # per-sample SILog on the COLMAP points' depth (poses.json sfm_depth)
    align_scale_prior_weight: float = 0.0  # (log s)^2 on AlignNet's per-pair scale
    photometric_weight: float = 1.0
    # validation during training: depth-eval's protocol on held-out frames with ground truth
    validation: list[str] = field(default_factory=list)  # "<folder>[@START:STOP[:STEP]]" or "sfm:<sequences>"
    validate_every: int = 0  # steps; 0 = never
    # engineering
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch default)
    checkpoint_every: int = 500
    log_every: int = 10
    image_log_every: int = 200
    export_onnx: bool = True
    export_height: int | None = None  # default: training size
    export_width: int | None = None

    def validate(self) -> TrainConfig:
        if not self.sequences:
            raise ConfigError("sequences is empty: list the sequence folders written by depth-extract")
        for key in ("sequence_repeats", "source_strides"):  # one count per sequence
            counts = getattr(self, key)
            if counts is not None and (len(counts) != len(self.sequences)
                                       or not all(isinstance(c, int) and c >= 1 for c in counts)):
                raise ConfigError(f"{key} must be one whole number >= 1 per sequence ({len(self.sequences)}), "
                                  f"got {counts}")
        if self.pose_mode not in ("colmap", "posenet", "fixed"):
            raise ConfigError(f"pose_mode must be colmap, posenet or fixed, got '{self.pose_mode}'")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ConfigError(f"amp must be none, bf16 or fp16, got '{self.amp}'")
        if self.height % 32 or self.width % 32:
            raise ConfigError(f"height/width must be multiples of 32, got {self.height}x{self.width}")
        if not 1 <= self.num_scales <= 4:
            raise ConfigError(f"num_scales must be 1..4, got {self.num_scales}")
        if not 0.0 < self.encoder_lr_scale <= 10.0:
            raise ConfigError(f"encoder_lr_scale must be in (0, 10], got {self.encoder_lr_scale}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")
        if not 1.0 <= self.zoom_max <= 4.0:
            raise ConfigError(f"zoom_max must be in [1, 4] (1: no zoom), got {self.zoom_max}")
        if self.batch_size < 1 or self.steps < 1 or self.isd_iterations < 1:
            raise ConfigError("batch_size, steps and isd_iterations must be >= 1")
        return self

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path | None = None) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        cfg = cls(**data)
        if base_dir is not None:
            cfg.sequences = [str((base_dir / s).resolve()) if not Path(s).is_absolute() else s for s in cfg.sequences]
            if isinstance(cfg.split_file, list):
                cfg.split_file = [str((base_dir / f).resolve()) for f in cfg.split_file]
            elif cfg.split_file and not Path(cfg.split_file).is_absolute():
                cfg.split_file = str((base_dir / cfg.split_file).resolve())
            cfg.validation = [_resolve_validation_spec(v, base_dir) for v in cfg.validation]
            if cfg.init_weights and not Path(cfg.init_weights).is_absolute():
                cfg.init_weights = str((base_dir / cfg.init_weights).resolve())
        return cfg.validate()

    @classmethod
    def from_yaml(cls, path: Path, overrides: dict | None = None) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config {path} not found; see training/configs/ for examples")
        data = yaml.safe_load(path.read_text()) or {}
        data.update(overrides or {})
        return cls.from_dict(data, path.parent)

    def to_dict(self) -> dict:
        return asdict(self)
