"""The training loop: data order, forward/backward with AMP and channels_last, optional DDP (torchrun),
logging (JSON lines + TensorBoard), atomic checkpoints with exact resume, final depth checkpoint and ONNX export.

Data order: batch b of epoch e is slice b of a permutation drawn from (seed, e); a global step maps to (e, b), so
a resumed run continues with exactly the batch the uninterrupted run would have used. Under DDP each rank takes
its own batch_size slice of a batch_size * world_size block.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from depth_estimation_training.checkpointing import (
    load_training_state,
    restore_rng_state,
    save_training_state,
    truncate_loss_log,
)
from depth_estimation_training.config import ConfigError, TrainConfig
from depth_estimation_training.dataset import DatasetError, SequenceDataset, read_split_files
from depth_estimation_training.objective import ObjectiveWeights, compute_objective, loss_floats
from depth_estimation_training.pose_refinement import COLMAP_POSE_MODES, PoseRefinement
from depth_estimation_training.validation import load_validation_set, validate
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from depth_estimation_ros.errors import ModelError
from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint, save_depth_checkpoint
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

LOG = logging.getLogger("depth-train")
RESUME_MUST_MATCH = ("network", "encoder", "pose_mode", "pose_encoder", "height", "width", "source_offsets",
                     "batch_size", "seed", "sequences", "split_file", "min_depth", "max_depth", "luminance_input",
                     "num_bins", "metric_stride", "gat_min_stride", "gat_attention", "gat_pooled_max_stride",
                     "gat_gated_max_stride", "gat_window", "init_weights", "sequence_repeats", "encoder_lr_scale",
                     "source_strides", "zoom_max", "ema_decay")


def optimizer_groups(depth_net: nn.Module, pose: nn.Module, lr: float, encoder_lr_scale: float = 1.0
                     ) -> list[dict]:
    """AdamW parameter groups: one group, or with ``encoder_lr_scale`` != 1 the depth network's (ImageNet-initialised)
    encoder in a second group at ``lr * encoder_lr_scale`` (the schedule scales both alike; the first group's
    rate is the one logged)."""
    if encoder_lr_scale == 1.0:
        return [{"params": list(depth_net.parameters()) + list(pose.parameters())}]
    encoder = {id(p) for p in depth_net.encoder.parameters()}
    return [{"params": [p for p in depth_net.parameters() if id(p) not in encoder] + list(pose.parameters())},
            {"params": [p for p in depth_net.parameters() if id(p) in encoder], "lr": lr * encoder_lr_scale}]


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
                  ) -> list[list[int]]:
    """The batches of one epoch for this rank (incomplete last block dropped)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(num_samples, generator=gen).tolist()
    block = batch_size * world
    return [perm[b * block + rank * batch_size: b * block + (rank + 1) * batch_size]
            for b in range(num_samples // block)]


class StepBatches:
    """Batch sampler over global steps [start, stop): step g is batch g mod B of epoch g // B, its samples as
    (epoch, index) pairs so each sample's augmentation is drawn from its own epoch. One DataLoader then spans many
    epochs with the same worker processes (re-creating it every epoch stalled each epoch's first step by about a
    second of worker start-up: measured on the H100, docs/training.md)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                 world: int = 1) -> None:
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.per_epoch = num_samples // (batch_size * world)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        epoch, batches = None, []
        for step in range(self.start, self.stop):
            e, b = divmod(step, self.per_epoch)
            if e != epoch:
                epoch = e
                batches = epoch_batches(self.num_samples, self.batch_size, self.seed, e, self.rank, self.world)
            yield [(e, i) for i in batches[b]]


def training_device(want: str, cuda_available: bool, world: int = 1, local_rank: int = 0, current_index: int = 0
                    ) -> torch.device:
    """The device a rank trains on, always with an index for CUDA (torch.cuda.set_device refuses a bare "cuda")."""
    if want == "auto":
        want = "cuda" if cuda_available else "cpu"
    if not want.startswith("cuda"):
        return torch.device(want)
    if not cuda_available:
        raise RuntimeError("device cuda requested but no CUDA GPU is visible; use device: cpu")
    if world > 1:
        return torch.device("cuda", local_rank)
    device = torch.device(want)
    return device if device.index is not None else torch.device("cuda", current_index)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def initial_weights(path: Path, net_cfg: DepthNetworkConfig) -> dict[str, torch.Tensor]:
    """The state dict of the depth checkpoint ``path`` (read without unpickling code), refused with the differing
    fields when its network layout or depth range is not ``net_cfg``'s."""
    model, stored, _ = load_depth_checkpoint(path)
    ignored = {"pretrained", "encoder_weights"}
    differ = {f.name: (getattr(stored, f.name), getattr(net_cfg, f.name)) for f in fields(net_cfg)
              if f.name not in ignored and getattr(stored, f.name) != getattr(net_cfg, f.name)}
    if differ:
        raise ConfigError(f"init_weights {path} was trained with another network: {differ} (checkpoint, config); "
                          "set those keys as the checkpoint has them or start from ImageNet (init_weights: null)")
    return model.state_dict()


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: Path, resume: bool = False) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = self._pick_device()
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed + self.rank)
        split = read_split_files(cfg.split_file) if cfg.split_file else None
        self.dataset = SequenceDataset(
            [Path(s) for s in cfg.sequences], cfg.height, cfg.width, tuple(cfg.source_offsets),
            use_colmap=cfg.pose_mode in COLMAP_POSE_MODES, augment=True, flip=cfg.flip,
            color_jitter=tuple(cfg.color_jitter) if cfg.color_jitter else None, seed=cfg.seed, split=split,
            repeats=cfg.sequence_repeats, strides=cfg.source_strides, zoom_max=cfg.zoom_max,
        )
        self.batches_per_epoch = len(self.dataset) // (cfg.batch_size * self.world)
        if self.batches_per_epoch == 0:
            raise DatasetError(f"{len(self.dataset)} samples cannot fill one batch of {cfg.batch_size} x "
                               f"{self.world} rank(s); lower batch_size")
        self.net_cfg = DepthNetworkConfig(network=cfg.network, encoder=cfg.encoder, min_depth=cfg.min_depth,
                                          max_depth=cfg.max_depth, pretrained=cfg.pretrained,
                                          luminance_input=cfg.luminance_input, num_bins=cfg.num_bins,
                                          metric_stride=cfg.metric_stride, gat_min_stride=cfg.gat_min_stride,
                                          gat_attention=cfg.gat_attention, gat_window=cfg.gat_window,
                                          gat_pooled_max_stride=cfg.gat_pooled_max_stride,
                                          gat_gated_max_stride=cfg.gat_gated_max_stride)
        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.depth_net = build_depth_network(self.net_cfg)
        if cfg.init_weights:
            self.depth_net.load_state_dict(initial_weights(Path(cfg.init_weights), self.net_cfg))
        self.depth_net = self.depth_net.to(self.device, memory_format=memory_format)
        self.pose = PoseRefinement(cfg.pose_mode, cfg.pose_encoder).to(self.device, memory_format=memory_format)
        # the averaged depth network (BatchNorm statistics averaged too); None without ema_decay
        self.ema = AveragedModel(self.depth_net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                 use_buffers=True) if cfg.ema_decay > 0 else None
        # fused on a GPU: one kernel for all parameters (the default for-each AdamW took 8.3 ms of a 117 ms step's
        # GPU time on the H100 in many small kernels, docs/training.md)
        self.optimizer = torch.optim.AdamW(
            optimizer_groups(self.depth_net, self.pose, cfg.lr, cfg.encoder_lr_scale), lr=cfg.lr,
            weight_decay=cfg.weight_decay, fused=True if self.device.type == "cuda" else None)
        # lr(step) = lr * (lr_final / lr) ** (step / steps), held at lr_final after `steps`: a closed form of the
        # step, so a run resumed with a larger `steps` follows the new schedule instead of decaying past lr_final
        ratio, total = cfg.lr_final / cfg.lr, max(cfg.steps, 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: ratio ** (min(step, total) / total))
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.weights = ObjectiveWeights(
            ssim_alpha=cfg.ssim_alpha, automask=cfg.automask, mlda_reweighting=cfg.mlda_reweighting,
            rotation_refine_weight=cfg.rotation_refine_weight, smoothness_weight=cfg.smoothness_weight,
            curvature_weight=cfg.curvature_weight, isd_weight=cfg.isd_weight, silog_weight=cfg.silog_weight,
            gradient_weight=cfg.gradient_weight, sfm_depth_weight=cfg.sfm_depth_weight,
            align_scale_prior_weight=cfg.align_scale_prior_weight, photometric_weight=cfg.photometric_weight,
        )
        self.step = 0
        if resume:
            self._resume()
        if self.world > 1:
            ids = [self.local_rank] if self.device.type == "cuda" else None
            # fewer scales than the network predicts leave the coarse heads without gradient
            self.depth_net = nn.parallel.DistributedDataParallel(self.depth_net, device_ids=ids,
                                                                 find_unused_parameters=cfg.num_scales < 4)
            if any(p.requires_grad for p in self.pose.parameters()):
                self.pose = nn.parallel.DistributedDataParallel(self.pose, device_ids=ids)
        self.is_main = self.rank == 0
        self.validation_sets = [load_validation_set(spec) for spec in cfg.validation] \
            if self.rank == 0 and cfg.validate_every > 0 else []
        self.writer = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    # ---- setup -------------------------------------------------------------------------------------------------
    def _pick_device(self) -> torch.device:
        want = training_device(self.cfg.device, torch.cuda.is_available(), self.world, self.local_rank,
                               torch.cuda.current_device() if torch.cuda.is_available() else 0)
        if want.type == "cuda":
            torch.cuda.set_device(want)
        return want

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    def _resume(self) -> None:
        state = load_training_state(self.checkpoint_path, map_location=self.device)
        stored = state["config"]
        # a key the checkpoint's config predates had its default value then
        stored = {**TrainConfig().to_dict(), **stored}
        clash = {k: (stored.get(k), getattr(self.cfg, k)) for k in RESUME_MUST_MATCH if stored.get(k) != getattr(
            self.cfg, k)}
        if clash:
            raise ValueError(f"cannot resume {self.checkpoint_path}: the config changed {clash}; restore the "
                             "original config or start a new output folder")
        self.depth_net.load_state_dict(state["depth_net"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.pose.load_state_dict(state["pose"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)  # this config's schedule
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        restore_rng_state(state["rng"])
        if self.rank == 0:  # the steps a killed run logged after this checkpoint are trained (and logged) again
            dropped = truncate_loss_log(self.out_dir / "losses.jsonl", self.step)
            if dropped:
                LOG.info("losses.jsonl: dropped %d records after step %d", dropped, self.step)
        LOG.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    def save_checkpoint(self) -> Path | None:
        if not self.is_main:
            return None
        return save_training_state(self.checkpoint_path, {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "depth_net": _unwrap(self.depth_net).state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "pose": _unwrap(self.pose).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "training_data_hash": self.dataset.data_hash(),
        })

    # ---- one step ----------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for key, value in batch.items():
            value = value.to(self.device, non_blocking=True)
            if value.dim() == 4 and self.cfg.channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    def _poses(self, b: dict[str, torch.Tensor], depth: torch.Tensor, inv_k: torch.Tensor) -> dict[str, torch.Tensor]:
        per_source: dict[str, list[torch.Tensor]] = {}
        for s in range(b["sources_aug"].shape[1]):
            out = self.pose(b["target_aug"], b["sources_aug"][:, s], b["colmap_pose"][:, s], depth, b["k"], inv_k)
            for key in ("pose", "pose_t", "pose_r", "scale"):
                if key in out:
                    per_source.setdefault(key, []).append(out[key].float())
        return {key: torch.stack(v, 1) for key, v in per_source.items()}

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """One optimisation step (isd_iterations inner iterations on the same batch); returns the first
        iteration's loss parts and images for logging.

        The device is synchronised once, after the whole step is queued (reading the logged losses): a
        synchronisation inside the step leaves the GPU idle while the host launches what follows it.
        """
        cfg = self.cfg
        has_sparse = bool((batch["sparse_depth"] > 0).any())  # on the host copy: no device synchronisation
        has_sfm = bool((batch["sfm_depth"] > 0).any())
        b = self._to_device(batch)
        inv_k = torch.linalg.inv(batch["k"]).to(self.device)  # on the host: the CUDA inverse checks its result (a sync)
        sparse = b["sparse_depth"] if has_sparse else None
        best = None
        first_parts, first_images, totals = None, None, []
        self.depth_net.train()
        self.pose.train()
        for _ in range(cfg.isd_iterations):
            # networks under autocast; geometry and losses in float32 (SSIM and SILog are unstable in half precision)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype
                                is not None):
                out = self.depth_net(b["target_aug"])
                depths = [d.float() for d in out["depth"][: cfg.num_scales]]
                poses = self._poses(b, depths[0], inv_k)
            total, parts, images = compute_objective(
                self.weights, b["target"], b["sources"], depths, poses, b["k"], inv_k, sparse,
                use_gradient_loss=self.step >= cfg.gradient_warmup_steps, previous_best=best,
                sfm_depth=b["sfm_depth"] if has_sfm else None, sfm_metric=b["sfm_metric"],
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            best = (images["pseudo_label"], images["best_error"])
            totals.append(parts["total"])
            if first_parts is None:
                first_parts, first_images = parts, images
                first_images["depth"] = depths[0].detach()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(_unwrap(self.depth_net))
        floats = loss_floats({**first_parts, **{f"iteration {i} total": t for i, t in enumerate(totals)}})
        bad = [value for key, value in floats.items() if key.startswith("iteration ") and not math.isfinite(value)]
        if bad:
            # checked after the update so the step needs no extra synchronisation; the run stops here, and the
            # checkpoints on disk were written before it
            raise FloatingPointError(f"loss is {bad[0]} at step {self.step}: lower lr or use amp: bf16/none")
        return {key: value for key, value in floats.items() if not key.startswith("iteration ")}, first_images

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _loader(self, stop: int) -> DataLoader:
        """Batches for steps self.step .. stop - 1, from one set of worker processes."""
        batches = StepBatches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, self.step, stop, self.rank,
                              self.world)
        return DataLoader(self.dataset, batch_sampler=batches, num_workers=self.cfg.num_workers,
                          pin_memory=self.device.type == "cuda",
                          prefetch_factor=4 if self.cfg.num_workers > 0 else None)

    def _log(self, parts: dict[str, float], images: dict[str, torch.Tensor], timing: dict[str, float]) -> None:
        record = {"step": self.step, **parts, **timing}
        with open(self.out_dir / "losses.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: JSON lines only
                self.writer = False
        if self.writer and self.step % self.cfg.log_every == 0:
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, self.step)
            if self.step % self.cfg.image_log_every == 0:
                disp = 1.0 / images["depth"][:1].clamp(min=1e-3)
                self.writer.add_image("inverse_depth", (disp / disp.max())[0], self.step)
                err = images["reprojection_error"][:1]
                self.writer.add_image("reprojection_error", (err / err.max().clamp(min=1e-6))[0], self.step)
                self.writer.add_image("warped_source", images["warped"][0].clamp(0, 1), self.step)

    def depth_model(self) -> nn.Module:
        """The depth network that is validated and exported: the weight average with ema_decay, else the trained one."""
        return self.ema.module if self.ema is not None else _unwrap(self.depth_net)

    def validate(self) -> dict[str, float]:
        """Score the depth network on the validation sets and append the record to validation.jsonl."""
        if not self.validation_sets:
            return {}
        t0 = time.perf_counter()
        record = {"step": self.step, **validate(self.depth_model(), self.validation_sets, self.cfg.height,
                                                self.cfg.width, self.device)}
        record["validation_s"] = time.perf_counter() - t0
        with open(self.out_dir / "validation.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        LOG.info("validation at step %d: %s", self.step, ", ".join(
            f"{k.removeprefix('val/')} {v:.4f}" for k, v in record.items() if k.endswith(("structure_gain",
                                                                                             "abs_rel_scaled"))))
        return record

    def fit(self, max_steps: int | None = None, progress: bool = True) -> list[dict[str, float]]:
        """Train until cfg.steps (or max_steps more steps, for tests); returns the logged records of this call."""
        from tqdm import tqdm

        cfg = self.cfg
        stop = cfg.steps if max_steps is None else min(cfg.steps, self.step + max_steps)
        history = []
        bar = tqdm(total=stop, initial=self.step, disable=not (progress and self.is_main), desc="depth-train")
        if self.step < stop:
            if self.step == 0 and self.is_main:
                self.validate()
            t_wait = time.perf_counter()
            for batch in self._loader(stop):
                t_start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (train_step advances it)
                parts, images = self.train_step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                t_end = time.perf_counter()
                self.step += 1
                samples = cfg.batch_size * self.world
                timing = {"lr": lr, "data_wait_s": t_start - t_wait, "step_s": t_end - t_start,
                          "samples_per_s": samples / max(t_end - t_wait, 1e-9)}
                if self.device.type == "cuda":
                    timing["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
                if self.is_main:
                    self._log(parts, images, timing)
                history.append({"step": self.step, **parts, **timing})
                bar.update(1)
                bar.set_postfix(loss=f"{parts['total']:.4f}", sps=f"{timing['samples_per_s']:.1f}")
                if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.is_main and cfg.validate_every > 0 and self.step % cfg.validate_every == 0:
                    self.validate()
                t_wait = time.perf_counter()
        bar.close()
        return history

    def finish(self) -> dict[str, Path]:
        """Final training state, a depth checkpoint for depth-export / the node, and the ONNX export."""
        written: dict[str, Path] = {}
        if not self.is_main:
            return written
        written["state"] = self.save_checkpoint()
        extra = {"training_config": self.cfg.to_dict(), "training_data_hash": self.dataset.data_hash(),
                 "training_frames": list(dict.fromkeys(  # once each, also where sequence_repeats repeats them
                     f"{self.dataset.sequences[r.sequence].name} {r.target}" for r in self.dataset.samples)),
                 "steps": self.step}
        depth_model = self.depth_model().to(memory_format=torch.contiguous_format)
        written["depth_checkpoint"] = save_depth_checkpoint(self.out_dir / "depth_model.pt", depth_model,
                                                            replace(self.net_cfg, pretrained=False), extra)
        if self.cfg.export_onnx:
            from depth_estimation_ros.networks.export import export_checkpoint
            from depth_estimation_ros.networks.tensorrt_readiness import check_tensorrt_ready

            onnx_path = export_checkpoint(written["depth_checkpoint"], self.out_dir / "depth_model.onnx",
                                          self.cfg.export_height or self.cfg.height,
                                          self.cfg.export_width or self.cfg.width)
            problems = check_tensorrt_ready(onnx_path)
            if problems:
                raise ModelError(f"{onnx_path} is not TensorRT-ready: " + "; ".join(problems)
                                 + "; the network uses an operator TensorRT lacks: export with the current code")
            written["onnx"] = onnx_path
        if self.writer:
            self.writer.close()
        return written
