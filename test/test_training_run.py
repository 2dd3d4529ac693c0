"""End-to-end training on a tiny real sequence (KITTI odometry 00, 10 frames, COLMAP poses): the loss goes down
in 50 steps, the result exports to ONNX, and a run killed with SIGKILL resumes with the identical next-step loss."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from depth_estimation_training.colmap_poses import ColmapOptions
from depth_estimation_training.config import ConfigError, TrainConfig
from depth_estimation_training.poses import compute_sequence_poses
from depth_estimation_training.sequence import sequence_from_image_folder
from depth_estimation_training.trainer import RESUME_MUST_MATCH, Trainer
from shared_data import DATA

KITTI = DATA / "kitti_odometry00_first200"
NUM_FRAMES = 10


@pytest.fixture(scope="module")
def tiny_sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti_tiny") / "kitti00_tiny"
    k = np.array([[718.856, 0, 607.1928], [0, 718.856, 185.2157], [0, 0, 1]])
    gt = np.loadtxt(KITTI / "poses_gt_00_first200.txt").reshape(-1, 3, 4)
    images = [cv2.cvtColor(cv2.imread(str(KITTI / "image_0" / f"{i:06d}.png")), cv2.COLOR_BGR2RGB)
              for i in range(NUM_FRAMES)]
    odometry = [np.vstack([g, [0, 0, 0, 1]]) for g in gt[:NUM_FRAMES]]
    seq = sequence_from_image_folder(root, "kitti00_tiny", images, k, list(np.arange(NUM_FRAMES) * 0.1), odometry)
    options = ColmapOptions(max_image_size=640, max_num_features=1500, init_min_tri_angle=4.0,
                            init_max_forward_motion=1.0)
    doc = compute_sequence_poses(root, options)
    assert len(doc["chunks"]) == 1 and len(doc["chunks"][0]["frames"]) == NUM_FRAMES, doc["unregistered"]
    assert doc["chunks"][0]["scale_to_metric"] is not None
    return seq


def _config(seq_root: Path, **overrides) -> dict:
    cfg = dict(sequences=[str(seq_root)], network="lacdepth", encoder="efficientnet_lite0", pose_mode="colmap",
               height=64, width=192, batch_size=1, num_workers=0, steps=50, lr=3e-4, lr_final=1e-4, threads=1,
               checkpoint_every=0, export_onnx=False, max_depth=80.0, seed=3)
    cfg.update(overrides)
    return cfg


def test_fifty_steps_lower_the_loss_and_export_onnx(tiny_sequence, tmp_path):
    cfg = TrainConfig.from_dict(_config(tiny_sequence.root, export_onnx=True))
    trainer = Trainer(cfg, tmp_path / "run")
    history = trainer.fit(progress=False)
    losses = [h["total"] for h in history]
    assert len(losses) == 50 and all(np.isfinite(losses))
    # 8 samples, batch 1: compare the same 8 samples (one epoch) at the start and at the end
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.9 * first, (first, last)
    written = trainer.finish()
    model = onnx.load(str(written["onnx"]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["network"] == "lacdepth" and meta["trained"] == "true"
    assert meta["training_data_hash"] == trainer.dataset.data_hash()
    assert json.loads(meta["training_config"])["pose_mode"] == "colmap"
    session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    depth = session.run(None, {"image": np.random.rand(1, 3, 64, 192).astype(np.float32)})[0]
    assert depth.shape == (1, 1, 64, 192) and np.isfinite(depth).all() and depth.min() >= 0.1 - 1e-4
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_gatdepth_layout_keys_reach_the_network_and_the_resume_check(tiny_sequence, tmp_path):
    cfg = TrainConfig.from_dict(_config(tiny_sequence.root, network="gatdepth", gat_attention="pooled",
                                        gat_pooled_max_stride=4, gat_gated_max_stride=2, gat_window=5))
    trainer = Trainer(cfg, tmp_path / "run")
    net = trainer.net_cfg
    assert (net.gat_attention, net.gat_pooled_max_stride, net.gat_gated_max_stride, net.gat_window) == (
        "pooled", 4, 2, 5)
    kinds = [type(stage.attention).__name__ for stage in trainer.depth_net.stages]  # strides 16 .. 1
    assert kinds == ["WindowGraphAttention"] * 2 + ["WindowPooledAttention"] * 3
    assert [stage.attention.normalise for stage in trainer.depth_net.stages[2:]] == [True, False, False]
    assert all(stage.attention.window == 5 for stage in trainer.depth_net.stages)
    assert {"gat_attention", "gat_pooled_max_stride", "gat_gated_max_stride", "gat_window"} <= set(RESUME_MUST_MATCH)


def _read_losses(path: Path) -> dict[int, float]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the process was killed
            continue
        out[rec["step"]] = rec["total"]
    return out


def test_killed_run_resumes_with_the_identical_next_step_loss(tiny_sequence, tmp_path):
    out = tmp_path / "killed"
    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_sequence.root, steps=200, checkpoint_every=3)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "depth_estimation_training.train", str(config_path), "--out",
                             str(out), "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = out / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
            if checkpoint.is_file() and max(_read_losses(out / "losses.jsonl"), default=0) >= 4:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint within 240 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    import torch

    saved_step = torch.load(checkpoint, weights_only=True)["step"]  # tensors and plain types only
    logged_before_kill = _read_losses(out / "losses.jsonl")
    resumed = Trainer(TrainConfig.from_yaml(config_path), out, resume=True)
    assert resumed.step == saved_step
    next_loss = resumed.fit(max_steps=1, progress=False)[0]["total"]
    reference = Trainer(TrainConfig.from_yaml(config_path), tmp_path / "reference")
    uninterrupted = reference.fit(max_steps=saved_step + 1, progress=False)
    assert next_loss == uninterrupted[-1]["total"]
    assert [h["total"] for h in uninterrupted[:saved_step]] == [logged_before_kill[s] for s in
                                                                range(1, saved_step + 1)]
    if saved_step + 1 in logged_before_kill:  # the killed process got further: same value there too
        assert logged_before_kill[saved_step + 1] == next_loss


def test_resume_drops_the_steps_logged_after_the_checkpoint_and_sweeps_killed_temporaries(tiny_sequence, tmp_path):
    """A run that logged steps 1-5 but checkpointed at 3 (then was killed), resumed with depth-train --resume: the
    log holds each step once; a killed writer's temporary of last.pt is removed at start, a live writer's is not."""
    from depth_estimation_training.train import main as train_main
    from test_atomic_files import _writer

    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_sequence.root, steps=5, checkpoint_every=3)))
    out = tmp_path / "run"
    Trainer(TrainConfig.from_yaml(config_path), out).fit(progress=False)  # no finish(): as if killed after step 5
    assert sorted(_read_losses(out / "losses.jsonl")) == [1, 2, 3, 4, 5]
    last = out / "checkpoints" / "last.pt"
    live, live_tmp = _writer(last, 120)
    killed, killed_tmp = _writer(last, 120)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    try:
        assert train_main([str(config_path), "--out", str(out), "--resume", "--no-progress"]) == 0
        assert not os.path.exists(killed_tmp) and os.path.exists(live_tmp)
    finally:
        live.kill()
        live.wait()
    steps = [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("overrides", [
    dict(amp="bf16", channels_last=True, isd_iterations=2, mlda_reweighting=True),  # the GPU settings, on CPU
    dict(pose_mode="posenet", network="baseline", isd_weight=0.0),  # the monodepth2-style baseline
])
def test_training_modes_run(tiny_sequence, tmp_path, overrides):
    trainer = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=2, **overrides)), tmp_path / "run")
    history = trainer.fit(progress=False)
    assert len(history) == 2 and all(np.isfinite(h["total"]) for h in history)
    expected = {"rec_pose_s0"} if overrides.get("pose_mode") == "posenet" else {"rec_pose_t_s0", "rec_pose_r_s0"}
    assert expected <= set(history[0])


def test_repeated_sequence_samples_are_listed_once_in_the_model(tiny_sequence, tmp_path):
    from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

    cfg = TrainConfig.from_dict(_config(tiny_sequence.root, steps=1, sequence_repeats=[3]))
    trainer = Trainer(cfg, tmp_path / "run")
    assert len(trainer.dataset) == 3 * (NUM_FRAMES - 2)
    trainer.fit(progress=False)
    _, _, extra = load_depth_checkpoint(trainer.finish()["depth_checkpoint"])
    assert extra["training_frames"] == [f"kitti00_tiny {t}" for t in range(1, NUM_FRAMES - 1)]


def test_source_strides_space_the_sources_per_sequence(tiny_sequence, tmp_path):
    cfg = TrainConfig.from_dict(_config(tiny_sequence.root, steps=1, source_strides=[3]))
    trainer = Trainer(cfg, tmp_path / "run")
    assert [(r.target, r.sources) for r in trainer.dataset.samples] == [(t, (t - 3, t + 3)) for t in range(3, 7)]
    assert np.isfinite(trainer.fit(progress=False)[0]["total"])
    assert "source_strides" in RESUME_MUST_MATCH
    with pytest.raises(ConfigError, match="source_strides"):
        TrainConfig.from_dict(_config(tiny_sequence.root, source_strides=[1, 2]))


def test_resume_with_more_steps_follows_the_new_learning_rate_schedule(tiny_sequence, tmp_path):
    """Step s (1-based) trains at lr (lr_final / lr)^((s - 1) / steps): a 4-step run resumed with steps=8 continues
    on the 8-step curve (the old decay rate would have taken it below lr_final)."""
    out = tmp_path / "run"
    first = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=4, checkpoint_every=4)), out)
    assert [h["lr"] for h in first.fit(progress=False)] == pytest.approx([3e-4 * (1 / 3) ** (s / 4) for s in range(4)])
    resumed = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=8, checkpoint_every=0)), out,
                      resume=True)
    assert resumed.step == 4
    lrs = [h["lr"] for h in resumed.fit(progress=False)]
    assert lrs == pytest.approx([3e-4 * (1 / 3) ** (s / 8) for s in range(4, 8)])
    assert min(lrs) > 1e-4


def test_encoder_lr_scale_puts_the_encoder_in_its_own_group_on_the_same_schedule(tiny_sequence, tmp_path):
    trainer = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=4, checkpoint_every=0,
                                                    encoder_lr_scale=0.1)), tmp_path / "run")
    main, encoder = trainer.optimizer.param_groups
    encoder_ids = {id(p) for p in trainer.depth_net.encoder.parameters()}
    assert {id(p) for p in encoder["params"]} == encoder_ids
    everything = [id(p) for p in trainer.depth_net.parameters()] + [id(p) for p in trainer.pose.parameters()]
    assert sorted(id(p) for g in (main, encoder) for p in g["params"]) == sorted(everything)
    before = [p.detach().clone() for p in trainer.depth_net.encoder.parameters()]
    lrs = [h["lr"] for h in trainer.fit(progress=False)]
    assert lrs == pytest.approx([3e-4 * (1 / 3) ** (s / 4) for s in range(4)])  # the main group's, logged
    assert encoder["lr"] == pytest.approx(0.1 * main["lr"])
    assert any(not (a == b.detach()).all() for a, b in zip(before, trainer.depth_net.encoder.parameters()))
    assert "encoder_lr_scale" in RESUME_MUST_MATCH
    with pytest.raises(ConfigError, match="encoder_lr_scale"):
        TrainConfig.from_dict(_config(tiny_sequence.root, encoder_lr_scale=0.0))


def test_ema_weights_are_validated_exported_and_resumed_exactly(tiny_sequence, tmp_path):
    import torch

    overrides = dict(steps=4, checkpoint_every=2, ema_decay=0.5)
    whole = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, **overrides)), tmp_path / "whole")
    whole.fit(progress=False)
    written = whole.finish()
    state = torch.load(written["state"], weights_only=True)
    exported = torch.load(written["depth_checkpoint"], weights_only=True)["state_dict"]
    averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert exported.keys() == state["depth_net"].keys() == averaged.keys()
    assert all(torch.equal(exported[k], averaged[k]) for k in exported)  # the export is the average ...
    moved = [k for k, v in state["depth_net"].items() if v.is_floating_point() and not torch.equal(v, exported[k])]
    assert len(moved) > len(exported) // 2  # ... not the last step's weights
    assert whole.depth_model() is whole.ema.module

    out = tmp_path / "split"
    first = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, **overrides)), out)
    first.fit(max_steps=2, progress=False)  # checkpoint at step 2, as a killed run leaves it
    resumed = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, **overrides)), out, resume=True)
    assert resumed.step == 2 and int(resumed.ema.n_averaged) == 2
    resumed.fit(progress=False)
    split = resumed.finish()
    again = torch.load(split["depth_checkpoint"], weights_only=True)["state_dict"]
    assert all(torch.equal(again[k], exported[k]) for k in exported)
    with pytest.raises(ValueError, match="ema_decay"):  # the average is part of the resume check
        Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=4, ema_decay=0.9)), out, resume=True)
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig.from_dict(_config(tiny_sequence.root, ema_decay=1.0)).validate()


def test_init_weights_starts_from_a_finished_run_and_refuses_another_layout(tiny_sequence, tmp_path):
    """Fine-tuning (e.g. at a higher resolution) starts from a depth_model.pt's weights, not ImageNet's; a checkpoint
    of another layout is refused with the differing key named, before any step."""
    import torch
    from depth_estimation_training.config import ConfigError

    from depth_estimation_ros.networks.checkpoint import save_depth_checkpoint
    from depth_estimation_ros.networks.factory import build_depth_network

    first = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=2)), tmp_path / "first")
    first.fit(progress=False)
    finished = first.finish()["depth_checkpoint"]
    tuned = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=1, height=96, width=320,
                                                  init_weights=str(finished))), tmp_path / "tuned")
    expected = torch.load(finished, weights_only=True)["state_dict"]
    state = tuned.depth_net.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    fresh = Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=1)), tmp_path / "fresh")
    assert not all(torch.equal(fresh.depth_net.state_dict()[k], expected[k]) for k in expected)

    other = tmp_path / "other.pt"
    other_cfg = replace(first.net_cfg, num_bins=16, pretrained=False)
    save_depth_checkpoint(other, build_depth_network(other_cfg), other_cfg)
    with pytest.raises(ConfigError, match="num_bins"):
        Trainer(TrainConfig.from_dict(_config(tiny_sequence.root, steps=1, init_weights=str(other))),
                tmp_path / "refused")


def test_two_rank_ddp_run_over_gloo(tiny_sequence, tmp_path):
    """torchrun with two CPU ranks (gloo): the DDP-wrapped networks train in step (every backward all-reduces
    between the ranks), rank 0 alone writes the log and the checkpoint."""
    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_sequence.root, steps=3, checkpoint_every=3)))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
         "depth_estimation_training.train", str(config_path), "--out", str(out), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]  # one writer
    assert all(np.isfinite(r["total"]) for r in records)
    import torch

    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert not any(key.startswith("module.") for key in state["depth_net"])  # unwrapped: loads without DDP too
    assert Trainer(TrainConfig.from_yaml(config_path), out, resume=True).step == 3
