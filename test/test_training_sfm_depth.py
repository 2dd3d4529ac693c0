"""Image-only depth supervision from COLMAP's points, the readers of the shared sets, and the pieces of the CPU
recipe (fixed poses, luminance input, odometry consistency, validation during training)."""

import json

import cv2
import numpy as np
import pytest
import torch
from depth_estimation_training.benchmark_sfm_depth import measure, point_errors
from depth_estimation_training.colmap_poses import ColmapOptions, max_ray_angle_deg
from depth_estimation_training.config import ConfigError, TrainConfig
from depth_estimation_training.dataset import (
    SequenceDataset,
    crop_intrinsics,
    crop_window,
    rasterize_points,
    read_split_files,
    scale_intrinsics,
    zoom_window,
)
from depth_estimation_training.folder_datasets import kitti_odometry_sequence, seven_scenes_sequence
from depth_estimation_training.losses import per_sample_silog_loss
from depth_estimation_training.objective import ObjectiveWeights, compute_objective
from depth_estimation_training.pose_refinement import PoseRefinement
from depth_estimation_training.poses import compute_sequence_poses, odometry_consistent_runs
from depth_estimation_training.sequence import SequenceError
from depth_estimation_training.validation import ValidationError, load_validation_set, parse_validation_spec, validate
from shared_data import DATA

from depth_estimation_ros.data.datasets import DatasetError
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network
from depth_estimation_ros.networks.layers import luminance_rgb

SEVEN_SCENES = DATA / "7scenes_redkitchen_1000"
KITTI_07 = DATA / "kitti_odometry07_first160"
KITTI_06 = DATA / "kitti_odometry06_01_first51" / "seq06_KITTI_sequence_1"
KITTI_01 = DATA / "kitti_odometry06_01_first51" / "seq01_KITTI_sequence_2"


def test_rasterize_points_nearest_wins_and_scales_pixel_centres():
    xy = np.array([[0.5, 0.5], [0.6, 0.7], [99.5, 49.5], [150.0, 10.0]], np.float32)
    depth = np.array([5.0, 3.0, 7.0, 1.0], np.float32)
    out = rasterize_points(xy, depth, (50, 100), 25, 50)
    assert out[0, 0] == 3.0  # the nearer of the two points in the first pixel
    assert out[24, 49] == 7.0  # the last pixel's centre lands in the last output pixel
    assert (out > 0).sum() == 2  # the point outside the image is dropped


def test_per_sample_silog_is_scale_invariant_per_sample_with_lambda_one():
    target = torch.rand(2, 1, 8, 8) + 1.0
    valid = torch.ones_like(target, dtype=torch.bool)
    scaled = target * torch.tensor([2.0, 0.5]).view(2, 1, 1, 1)  # each sample off by its own scale
    assert per_sample_silog_loss(scaled, target, valid, torch.ones(2)) < 1e-2
    assert per_sample_silog_loss(scaled, target, valid, torch.full((2,), 0.85)) > 1.0
    # a sample without valid pixels does not count
    valid[1] = False
    loss = per_sample_silog_loss(scaled, target, valid, torch.ones(2))
    assert torch.isfinite(loss) and loss < 1e-2


def test_ray_angle_and_point_errors():
    centres = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    assert max_ray_angle_deg(np.array([0.5, 0, 0.5]), centres) == pytest.approx(90.0)
    gt = np.full((4, 4), np.nan, np.float32)
    gt[1, 2] = 2.0
    errors = point_errors(np.array([[2.5, 1.5], [0.5, 0.5]], np.float32), np.array([2.2, 1.0], np.float32), gt)
    assert errors.tolist() == pytest.approx([0.1])


def test_odometry_consistent_runs_cut_where_the_motion_disagrees():
    odo = np.cumsum(np.full((10, 3), [0.0, 0.0, 1.0]), axis=0)
    colmap = odo / 4.0  # scale 4 to metres
    colmap[5:] += np.array([0.0, 0.0, 0.5])  # the step 4 -> 5 is 3 m instead of 1 m
    runs = odometry_consistent_runs(colmap, odo, 4.0)
    assert runs == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert odometry_consistent_runs(colmap[:4], odo[:4], 8.0) == []  # every step off by 2x: nothing kept


@pytest.mark.parametrize("folder,size", [(KITTI_07, (370, 1226)), (KITTI_06, (370, 1226)), (KITTI_01, (376, 1241))])
def test_kitti_odometry_layouts_read_with_their_calibration_and_poses(tmp_path, folder, size):
    seq = kitti_odometry_sequence(folder, tmp_path / "s", range(0, 3), "s")
    assert (seq.height, seq.width) == size
    assert seq.intrinsics[0, 0] == pytest.approx(718.856 if folder == KITTI_01 else 707.0912)
    assert seq.has_odometry and np.allclose(seq.frames[0].odometry[:3, :3], np.eye(3), atol=1e-6)
    assert seq.frames[2].odometry[2, 3] > 0  # driving forward along the optical axis
    with pytest.raises(SequenceError, match="frame 999 requested"):
        kitti_odometry_sequence(folder, tmp_path / "t", range(999, 1000))


def test_seven_scenes_sequence_every_fourth_frame(tmp_path):
    seq = seven_scenes_sequence(SEVEN_SCENES, tmp_path / "s", range(0, 12, 4), "s")
    assert len(seq.frames) == 3 and (seq.width, seq.height) == (640, 480)
    assert seq.frames[1].stamp == pytest.approx(4 / 30)
    pose = np.loadtxt(SEVEN_SCENES / "pose" / "frame-000008.pose.txt")
    assert np.allclose(seq.frames[2].odometry, pose)


@pytest.fixture(scope="module")
def kitchen_sequence(tmp_path_factory):
    """40 7-Scenes frames (every 4th of 0-159, 5.3 s: enough camera path for the odometry scale) through
    depth-poses: poses and SfM depth."""
    root = tmp_path_factory.mktemp("kitchen") / "kitchen"
    seven_scenes_sequence(SEVEN_SCENES, root, range(0, 160, 4), "kitchen")
    doc = compute_sequence_poses(root, ColmapOptions(max_num_features=1024))
    return root, doc


def test_sfm_depth_is_written_metric_and_close_to_the_sensor_depth(kitchen_sequence):
    root, doc = kitchen_sequence
    assert doc["chunks"] and all(c["sfm_depth_metric"] for c in doc["chunks"])
    assert doc["sfm_points"]["median_per_frame"] >= 50
    # frames 0, 20, ..., 140 have sensor depth: sequence index i is frame 4 i
    r = measure(root, SEVEN_SCENES, 0, 4)
    assert r["frames"] >= 3
    assert r["median_rel_error"] < 0.10, r  # metric through the odometry scale, no per-frame fit
    assert r["within_10pct"] > 0.5, r


def test_dataset_gives_sfm_depth_at_training_size_and_flips_it(kitchen_sequence):
    root, _ = kitchen_sequence
    ds = SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, augment=False)
    sample = ds[0]
    sfm = sample["sfm_depth"]
    assert sfm.shape == (1, 96, 128) and (sfm > 0).sum() > 20 and bool(sample["sfm_metric"])
    assert 0.3 < float(sfm[sfm > 0].median()) < 5.0  # a kitchen, in metres
    flipped = SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, augment=True, flip=True, color_jitter=None)
    for key in range(8):  # some of these samples are flipped: the SfM depth flips with the image
        s = flipped[(0, key % len(flipped))]
        plain = ds[key % len(ds)]
        assert torch.equal(s["sfm_depth"], plain["sfm_depth"]) or torch.equal(s["sfm_depth"],
                                                                             plain["sfm_depth"].flip(-1))


def test_zoom_window_keeps_every_reprojection_when_depth_and_translation_shrink_with_it():
    rng = np.random.default_rng(0)
    k = np.array([[718.9, 0, 607.2], [0, 718.9, 185.2], [0, 0, 1]])
    height, width, out_h, out_w = 375, 1242, 96, 320
    points = np.column_stack([rng.uniform(-8, 8, 50), rng.uniform(-2, 2, 50), rng.uniform(4, 60, 50)])
    rotation, _ = cv2.Rodrigues(np.array([0.01, -0.03, 0.002]))
    translation = np.array([0.05, -0.02, 0.8])

    def project(kk, pts):
        uvw = pts @ kk.T
        return uvw[:, :2] / uvw[:, 2:]

    for zoom, ux, uy in [(1.0, 0.3, 0.7), (1.37, 0.0, 0.99), (2.0, 0.5, 0.25)]:
        x0, y0, w, h = zoom_window(height, width, zoom, ux, uy)
        assert 0 <= x0 <= width - w and 0 <= y0 <= height - h and abs(width / w - zoom) < 0.01
        kz = scale_intrinsics(crop_intrinsics(k, x0, y0), out_w / w, out_h / h)
        z = np.sqrt(width / w * height / h)
        # a pixel of the full frame lands where cropping and resizing put it (pixel-centre convention)
        to_window = np.array([out_w / w, out_h / h])
        for pts in (points, (points - translation) @ rotation):
            expected = (project(k, pts) - [x0, y0] + 0.5) * to_window - 0.5
            assert np.allclose(project(kz, pts / z), expected, atol=1e-6)
        # and the target -> source reprojection with depth / z and translation / z is the full frame's, mapped
        src_full = project(k, points @ rotation.T + translation)
        src_zoom = project(kz, (points / z) @ rotation.T + translation / z)
        assert np.allclose(src_zoom, (src_full - [x0, y0] + 0.5) * to_window - 0.5, atol=1e-6)


def test_crop_window_cuts_a_map_stored_at_another_size_at_the_same_fractions():
    frame = np.arange(40 * 60).reshape(40, 60)
    half = frame[::2, ::2]  # a depth map at half the frame's size
    window = (10, 4, 30, 20)
    assert np.array_equal(crop_window(frame, window, (40, 60)), frame[4:24, 10:40])
    assert np.array_equal(crop_window(half, window, (40, 60)), frame[4:24:2, 10:40:2])


def test_dataset_zoom_crops_every_frame_and_divides_depths_and_translations(kitchen_sequence):
    root, _ = kitchen_sequence
    plain = SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, augment=False)
    zoomed = SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, augment=True, flip=False,
                             color_jitter=None, zoom_max=1.6)
    seq = plain.sequences[0]
    zooms = []
    for i in range(6):
        a, b = plain[i], zoomed[(0, i)]
        z = float(b["zoom"])
        zooms.append(z)
        # focal lengths grow by the window's size ratios, whose geometric mean is the zoom
        fx, fy = float(b["k"][0, 0] / a["k"][0, 0]), float(b["k"][1, 1] / a["k"][1, 1])
        assert np.sqrt(fx * fy) == pytest.approx(z, rel=1e-5)
        # the window K describes (its size from the focal ratios, its corner from the principal point) is the one
        # the image was cut from
        sx, sy = float(b["k"][0, 0]) / seq.intrinsics[0, 0], float(b["k"][1, 1]) / seq.intrinsics[1, 1]
        w, h = round(128 / sx), round(96 / sy)
        x0 = round(seq.intrinsics[0, 2] + 0.5 - (float(b["k"][0, 2]) + 0.5) / sx)
        y0 = round(seq.intrinsics[1, 2] + 0.5 - (float(b["k"][1, 2]) + 0.5) / sy)
        crop = seq.read_rgb(plain.samples[i].target)[y0:y0 + h, x0:x0 + w]
        expected = torch.from_numpy(cv2.resize(crop, (128, 96), interpolation=cv2.INTER_AREA)).permute(2, 0, 1) / 255.0
        assert torch.allclose(b["target"], expected, atol=1e-6)
        assert torch.allclose(b["colmap_pose"][:, :3, 3] * z, a["colmap_pose"][:, :3, 3], atol=1e-6)
        assert torch.equal(b["colmap_pose"][:, :3, :3], a["colmap_pose"][:, :3, :3])
        # every SfM depth is one of the target's points divided by the zoom
        chunk = plain.chunks[0][plain.samples[i].chunk]
        with np.load(root / chunk["sfm_depth"][chunk["frames"].index(plain.samples[i].target)]) as data:
            raw = data["depth"]
        values = b["sfm_depth"][b["sfm_depth"] > 0].numpy() * z
        assert len(values) > 10 and np.isclose(values[:, None], raw[None], rtol=1e-5).any(1).all()
        # the image is a window of the frame, 1/zoom of its size, resized: not the whole frame
        assert b["target"].shape == a["target"].shape and not torch.equal(b["target"], a["target"])
    # drawn per sample within [1, zoom_max] (up to the window's rounding to whole pixels)
    assert min(zooms) >= 1.0 and max(zooms) <= 1.6 * (1 + 2 / 480) and max(zooms) - min(zooms) > 0.1
    with pytest.raises(DatasetError, match="zoom_max"):
        SequenceDataset([root], 96, 128, (-1, 1), zoom_max=0.5)
    with pytest.raises(ConfigError, match="zoom_max"):
        TrainConfig(sequences=["x"], zoom_max=5.0).validate()


def test_fixed_pose_mode_uses_the_colmap_pose_and_has_no_networks():
    pose = PoseRefinement("fixed")
    assert sum(p.numel() for p in pose.parameters()) == 0
    rel = torch.eye(4).repeat(2, 1, 1)
    rel[:, 2, 3] = 0.7
    out = pose(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), rel)
    assert torch.equal(out["pose"], rel)


def test_objective_adds_sfm_silog_and_the_align_scale_prior():
    n, h, w = 2, 32, 32
    target, sources = torch.rand(n, 3, h, w), torch.rand(n, 2, 3, h, w)
    depth = torch.full((n, 1, h, w), 2.0, requires_grad=True)
    k = torch.tensor([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]]).repeat(n, 1, 1)
    poses = {"pose": torch.eye(4).repeat(n, 2, 1, 1), "scale": torch.full((n, 2), 2.0)}
    sfm = torch.zeros(n, 1, h, w)
    sfm[:, :, ::4, ::4] = 4.0  # twice as far as predicted
    w_on = ObjectiveWeights(sfm_depth_weight=1.0, align_scale_prior_weight=0.5, isd_weight=0.0)
    total, parts, _ = compute_objective(w_on, target, sources, [depth], poses, k, torch.linalg.inv(k),
                                        sfm_depth=sfm, sfm_metric=torch.tensor([True, True]))
    assert parts["sfm_silog"] > 1.0 and parts["align_scale_prior"] == pytest.approx(np.log(2.0) ** 2, rel=1e-5)
    total.backward()
    assert depth.grad.abs().sum() > 0
    _, invariant, _ = compute_objective(w_on, target, sources, [depth.detach()], poses, k, torch.linalg.inv(k),
                                        sfm_depth=sfm, sfm_metric=torch.tensor([False, False]))
    assert invariant["sfm_silog"] < 0.2  # a constant factor off is no error where the scale is not metric


def test_luminance_input_makes_colour_and_its_grey_image_the_same_input():
    rgb = torch.rand(1, 3, 64, 96)
    grey = luminance_rgb(rgb)
    assert torch.allclose(grey[:, 0], grey[:, 2]) and torch.allclose(luminance_rgb(grey), grey, atol=1e-6)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False, luminance_input=True)
    net = build_depth_network(cfg).eval()
    with torch.no_grad():
        assert torch.allclose(net.predict_depth(rgb), net.predict_depth(grey), atol=1e-5)
    plain = build_depth_network(DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False)).eval()
    assert set(plain.state_dict()) == set(net.state_dict())  # a flag, not weights


def test_split_files_union_and_config_lists(tmp_path):
    (tmp_path / "a.txt").write_text("# a\nseq_a 0\nseq_a 1\n")
    (tmp_path / "b.txt").write_text("seq_b 5\n")
    assert read_split_files([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]) == {"seq_a": {0, 1}, "seq_b": {5}}
    config = tmp_path / "c.yaml"
    config.write_text("sequences: [s]\nsplit_file: [a.txt, b.txt]\npose_mode: fixed\n"
                      "validation: [v@1:3, 'sfm:x,/abs/y']\n")
    cfg = TrainConfig.from_yaml(config)
    assert cfg.split_file == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    assert cfg.validation == [str(tmp_path / "v") + "@1:3", f"sfm:{tmp_path / 'x'},/abs/y"]


def test_validation_scores_the_network_against_scene_blind_references():
    folder, frames = parse_validation_spec(f"{DATA / 'tum_fr3_cabinet_keyframes'}@40:46")
    assert frames == range(40, 46)
    vset = load_validation_set(f"{DATA / 'tum_fr3_cabinet_keyframes'}@40:46")
    assert len(vset.frames) == 6 and vset.max_depth == 10.0
    net = build_depth_network(DepthNetworkConfig("baseline", "efficientnet_lite0", pretrained=False, max_depth=10.0))
    record = validate(net, [vset], 64, 96, torch.device("cpu"))
    key = f"val/{vset.name}/"
    assert 0 < record[key + "abs_rel_scaled"] < 1.0
    # structure gain is (b) - (a) exactly
    gain = record[key + "mean_prediction_abs_rel_scaled"] - record[key + "abs_rel_scaled"]
    assert record[key + "structure_gain"] == pytest.approx(gain, abs=1e-9)
    with pytest.raises(ValidationError, match="START:STOP"):
        parse_validation_spec("x@a:b")


def test_poses_json_lists_sfm_depth_for_every_chunk_frame(kitchen_sequence):
    root, doc = kitchen_sequence
    stored = json.loads((root / "poses.json").read_text())
    for chunk in stored["chunks"]:
        assert len(chunk["sfm_depth"]) == len(chunk["frames"])
        assert all((root / rel).is_file() for rel in chunk["sfm_depth"])


def test_trainer_fixed_poses_with_sfm_depth_uses_registered_chunks_and_validates(kitchen_sequence, tmp_path):
    from depth_estimation_training.trainer import Trainer

    root, doc = kitchen_sequence
    cfg = TrainConfig.from_dict(dict(
        sequences=[str(root)], network="lacdepth", encoder="efficientnet_lite0", pretrained=False, pose_mode="fixed",
        height=64, width=96, batch_size=2, num_workers=0, steps=4, threads=1, checkpoint_every=0, export_onnx=False,
        max_depth=10.0, sfm_depth_weight=1.0, luminance_input=True, num_scales=2, validate_every=2,
        validation=[f"{DATA / 'tum_fr3_cabinet_keyframes'}@40:44"]))
    trainer = Trainer(cfg, tmp_path / "run")
    registered = {f for c in doc["chunks"] for f in c["frames"]}
    assert all(ref.chunk is not None and ref.target in registered for ref in trainer.dataset.samples)
    history = trainer.fit(progress=False)
    assert all(np.isfinite(h["sfm_silog"]) and h["sfm_silog"] > 0 for h in history)
    records = [json.loads(line) for line in (tmp_path / "run" / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2, 4]
    assert trainer.depth_net.normalize.luminance


def test_sfm_validation_set_scores_against_the_metric_points(kitchen_sequence):
    root, _ = kitchen_sequence
    vset = load_validation_set(f"sfm:{root}")
    assert len(vset.frames) >= 20 and all(f.rgb.shape[:2] == (480, 640) for f in vset.frames)
    gt = vset.frames[0].ground_truth
    assert 20 < np.isfinite(gt).sum() < gt.size // 10  # sparse points, NaN elsewhere
    from depth_estimation_training.validation import score_sets

    # the points themselves, filled with their median where there are none, beat their own mean over frames
    record = score_sets(lambda rgb: next(np.where(np.isfinite(f.ground_truth), f.ground_truth,
                                                  np.nanmedian(f.ground_truth))
                                         for f in vset.frames if f.rgb is rgb), [vset])
    key = f"val/{vset.name}/"
    assert record[key + "abs_rel_scaled"] < 1e-6 and record[key + "structure_gain"] > 0.05


def test_a_checkpoint_from_before_a_new_config_key_still_resumes(kitchen_sequence, tmp_path):
    from depth_estimation_training.checkpointing import load_training_state, save_training_state
    from depth_estimation_training.trainer import Trainer

    root, _ = kitchen_sequence
    cfg = TrainConfig.from_dict(dict(
        sequences=[str(root)], network="baseline", encoder="efficientnet_lite0", pretrained=False, pose_mode="fixed",
        height=64, width=96, batch_size=2, num_workers=0, steps=2, threads=1, checkpoint_every=0, export_onnx=False,
        max_depth=10.0, sfm_depth_weight=1.0))
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit(max_steps=1, progress=False)
    path = trainer.save_checkpoint()
    state = load_training_state(path)
    del state["config"]["luminance_input"]  # written before the key existed (default False)
    save_training_state(path, state)
    assert Trainer(cfg, tmp_path / "run", resume=True).step == 1
    changed = TrainConfig.from_dict({**cfg.to_dict(), "luminance_input": True})
    with pytest.raises(ValueError, match="luminance_input"):
        Trainer(changed, tmp_path / "run", resume=True)


def test_a_chunk_whose_odometry_does_not_move_is_normalised_not_dropped(tmp_path):
    from depth_estimation_training.colmap_poses import ColmapResult, PoseChunk
    from depth_estimation_training.poses import poses_document
    from depth_estimation_training.sequence import Frame, Sequence

    frames = [Frame(f"images/{i:06d}.png", 0.1 * i, None, np.eye(4)) for i in range(4)]  # standing still
    seq = Sequence(tmp_path, "still", 64, 48, np.eye(3), frames)
    poses = []
    for i in range(4):
        pose = np.eye(4)
        pose[2, 3] = -0.5 * i  # COLMAP sees motion the odometry does not
        poses.append(pose)
    chunk = PoseChunk(0, [f"{i:06d}.png" for i in range(4)], poses, [np.zeros((0, 3), np.float32)] * 4)
    doc = poses_document(seq, ColmapResult([chunk], [], 4))
    assert len(doc["chunks"]) == 1 and doc["chunks"][0]["frames"] == [0, 1, 2, 3]
    assert doc["chunks"][0]["scale_to_metric"] is None and not doc["chunks"][0]["sfm_depth_metric"]
    assert doc["inconsistent_with_odometry"] == []


def test_sfm_validation_set_without_poses_names_the_fix(tmp_path):
    seven_scenes_sequence(SEVEN_SCENES, tmp_path / "s", range(0, 3), "s")
    with pytest.raises(ValidationError, match="run depth-poses"):
        load_validation_set(f"sfm:{tmp_path / 's'}")


def test_uncertainty_scale_fitted_on_sfm_points_of_training_frames(kitchen_sequence, tmp_path, capsys):
    """validation --fit-uncertainty-scale: the fitted scale puts 68 % of the SfM points within 1 sigma on the frames
    it was fitted on, and is stamped (with its record) into the written model."""
    import onnx
    from depth_estimation_training.validation import calibrate_uncertainty, main

    from depth_estimation_ros.engines.factory import create_engine

    root, _ = kitchen_sequence
    out = tmp_path / "calibrated.onnx"
    assert main(["--model", "lacdepth_indoor", "--fit-uncertainty-scale", str(out), f"sfm:{root}"]) == 0
    meta = {p.key: p.value for p in onnx.load(out, load_external_data=False).metadata_props}
    record = json.loads(meta["uncertainty_scale_fit"])
    assert record["source"] == [f"sfm:{root}"] and record["pixels"] > 1000
    assert float(meta["uncertainty_scale"]) == pytest.approx(record["scale"], rel=1e-5)
    engine = create_engine(str(out), backend="onnxruntime")
    calibrated = calibrate_uncertainty(lambda rgb: engine.estimate_with_std(rgb, rgb.shape[:2]),
                                       [load_validation_set(f"sfm:{root}")])
    assert calibrated.within_1_sigma == pytest.approx(0.6827, abs=0.01)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["--model", "lacdepth", "--model", "gatdepth", "--fit-uncertainty-scale", str(out), f"sfm:{root}"])
    assert exit_info.value.code == 2
    assert main(["--model", "gatdepth", "--fit-uncertainty-scale", str(tmp_path / "g.onnx"), f"sfm:{root}"]) != 0
    assert "no depth_std" in capsys.readouterr().err and not (tmp_path / "g.onnx").exists()


def test_a_slow_hand_held_chunk_gets_its_metric_scale_from_the_whole_trajectory(tmp_path):
    """Every odometry step (2 cm) is shorter than the step the per-step scale needs: the chunk's Sim(3) scale
    makes it metric instead of leaving it normalised."""
    from depth_estimation_training.colmap_poses import ColmapResult, PoseChunk
    from depth_estimation_training.poses import ODOMETRY_MIN_STEP_M, poses_document
    from depth_estimation_training.sequence import Frame, Sequence

    angles = np.linspace(0.0, np.pi, 40)
    centres_m = np.stack([np.cos(angles), np.sin(angles), 0.1 * angles], axis=1) * 0.3  # an arc, metres
    assert np.linalg.norm(np.diff(centres_m, axis=0), axis=1).max() < ODOMETRY_MIN_STEP_M
    frames, poses = [], []
    for i, centre in enumerate(centres_m):
        odometry = np.eye(4)
        odometry[:3, 3] = centre
        frames.append(Frame(f"images/{i:06d}.png", 0.066 * i, None, odometry))
        cam_from_world = np.eye(4)
        cam_from_world[:3, 3] = -centre / 5.0  # COLMAP units: 5 to the metre
        poses.append(cam_from_world)
    seq = Sequence(tmp_path, "hand_held", 64, 48, np.eye(3), frames)
    chunk = PoseChunk(0, [f"{i:06d}.png" for i in range(40)], poses, [np.zeros((0, 3), np.float32)] * 40)
    doc = poses_document(seq, ColmapResult([chunk], [], 40))
    assert [c["frames"] for c in doc["chunks"]] == [list(range(40))]
    assert doc["chunks"][0]["scale_to_metric"] == pytest.approx(5.0, rel=1e-6)
    assert doc["chunks"][0]["sfm_depth_metric"] and doc["inconsistent_with_odometry"] == []


def test_sequence_repeats_weight_a_set_within_each_epoch(kitchen_sequence, tmp_path):
    root, _ = kitchen_sequence
    once = SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, augment=False)
    twice = SequenceDataset([root, root], 96, 128, (-1, 1), use_colmap=True, augment=False, repeats=[1, 3])
    assert len(twice) == 4 * len(once)
    assert [ref.sequence for ref in twice.samples].count(1) == 3 * len(once)
    assert "each 3 times per epoch" in twice.report[1]
    with pytest.raises(DatasetError, match="one per sequence"):
        SequenceDataset([root], 96, 128, (-1, 1), use_colmap=True, repeats=[1, 2])
    config = tmp_path / "c.yaml"
    config.write_text("sequences: [a, b]\npose_mode: fixed\nsequence_repeats: [1, 0]\n")
    with pytest.raises(ConfigError, match="sequence_repeats must be one whole number >= 1 per sequence"):
        TrainConfig.from_yaml(config)
