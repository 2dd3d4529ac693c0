"""COLMAP (pycolmap) on the real TUM cabinet keyframes: the low-texture case GasMono targets.

Baseline measured beforehand with plain pycolmap: defaults register 4/58, tuned SIFT + exhaustive matching 11/58
in the largest model. Every registered chunk must be kept and reported, unregistered frames excluded.
"""

import copy

import cv2
import numpy as np
import pytest
from depth_estimation_training.colmap_poses import ColmapOptions
from depth_estimation_training.dataset import SequenceDataset
from depth_estimation_training.poses import compute_sequence_poses, describe
from depth_estimation_training.sequence import sequence_from_image_folder
from depth_estimation_training.sim3 import (
    AlignmentError,
    absolute_trajectory_error,
    path_length,
    relative_rotation_errors,
    umeyama_alignment,
)
from evo.core.metrics import PoseRelation
from evo.core.trajectory import PosePath3D
from evo.main_ape import ape
from shared_data import TUM_K, tum_keyframe_poses
from shared_data import TUM_KEYFRAMES as TUM


def test_umeyama_recovers_a_known_similarity_and_matches_evo():
    rng = np.random.default_rng(1)
    src = rng.standard_normal((50, 3))
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    dst = 2.5 * src @ rot.T + np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal((50, 3))
    al = umeyama_alignment(src, dst)
    assert al.scale == pytest.approx(2.5, rel=1e-2) and np.allclose(al.rotation, rot, atol=1e-2)
    ate, _ = absolute_trajectory_error(src, dst)
    ref = PosePath3D(positions_xyz=dst, orientations_quat_wxyz=np.tile([1.0, 0, 0, 0], (50, 1)))
    est = PosePath3D(positions_xyz=src, orientations_quat_wxyz=np.tile([1.0, 0, 0, 0], (50, 1)))
    evo_rmse = ape(ref, est, PoseRelation.translation_part, align=True, correct_scale=True).stats["rmse"]
    assert ate == pytest.approx(evo_rmse, rel=1e-6)
    with pytest.raises(AlignmentError, match="did not move"):
        umeyama_alignment(np.zeros((5, 3)), dst[:5])


def test_relative_rotation_errors_ignore_the_world_frame_and_match_evo():
    from evo.core.trajectory import PoseTrajectory3D
    from evo.core.units import Unit
    from evo.main_rpe import rpe
    from scipy.spatial.transform import Rotation

    _, reference = tum_keyframe_poses()
    world_change = Rotation.from_euler("xyz", [10, -40, 25], degrees=True).as_matrix()
    estimate = reference.copy()
    estimate[:, :3, :3] = world_change @ reference[:, :3, :3]
    assert relative_rotation_errors(estimate[:, :3, :3], reference[:, :3, :3]).max() < 1e-6
    estimate[7, :3, :3] = estimate[7, :3, :3] @ Rotation.from_euler("x", 2.0, degrees=True).as_matrix()
    errors = relative_rotation_errors(estimate[:, :3, :3], reference[:, :3, :3])
    assert errors[6] == pytest.approx(2.0, abs=1e-6) and errors[7] == pytest.approx(2.0, abs=1e-6)
    assert np.delete(errors, [6, 7]).max() < 1e-6
    stamps = np.arange(len(reference), dtype=float)
    evo_result = rpe(PoseTrajectory3D(poses_se3=list(reference), timestamps=stamps),
                     PoseTrajectory3D(poses_se3=list(estimate), timestamps=stamps),
                     PoseRelation.rotation_angle_deg, delta=1, delta_unit=Unit.frames, all_pairs=True)
    evo_errors = evo_result.np_arrays["error_array"]
    assert np.allclose(errors, evo_errors, atol=1e-6)
    with pytest.raises(AlignmentError, match="rotations"):
        relative_rotation_errors(estimate[:3, :3, :3], reference[:4, :3, :3])


@pytest.fixture(scope="module")
def tum_sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("tum_seq")
    stamps, poses = tum_keyframe_poses()
    images = [cv2.cvtColor(cv2.imread(str(TUM / "rgb" / f"{i:04d}_rgb_raw.jpg")), cv2.COLOR_BGR2RGB)
              for i in range(len(poses))]
    # the motion-capture poses play the odometry that gives COLMAP's reconstruction its metric scale
    return sequence_from_image_folder(root, "tum_cabinet", images, TUM_K, list(stamps), list(poses))


def test_colmap_on_tum_cabinet_registers_more_than_the_baseline(tum_sequence):
    doc = compute_sequence_poses(tum_sequence.root, ColmapOptions.low_texture())
    print(describe(doc), doc["colmap"]["seconds"])
    registered = sum(len(c["frames"]) for c in doc["chunks"])
    assert registered > 11, describe(doc)
    assert registered + len(doc["unregistered"]) == 58
    frames = [f for c in doc["chunks"] for f in c["frames"]]
    assert len(frames) == len(set(frames))  # a frame belongs to one chunk
    gt = np.stack([f.odometry[:3, 3] for f in tum_sequence.frames])
    for chunk in doc["chunks"]:
        assert chunk["frames"] == list(range(chunk["frames"][0], chunk["frames"][-1] + 1))  # consecutive
        if len(chunk["frames"]) < 4:
            continue
        # metric scale from the Sim(3) fit: COLMAP centres * scale ~ ground-truth path; own ATE agrees with evo
        e = np.stack([-np.asarray(m)[:3, :3].T @ np.asarray(m)[:3, 3] for m in chunk["cam_from_world"]])
        ref = gt[chunk["frames"]]
        ate, al = absolute_trajectory_error(e, ref)
        assert al.scale == pytest.approx(chunk["scale_to_metric"])
        evo_ref = PosePath3D(positions_xyz=ref, orientations_quat_wxyz=np.tile([1.0, 0, 0, 0], (len(e), 1)))
        evo_est = PosePath3D(positions_xyz=e, orientations_quat_wxyz=np.tile([1.0, 0, 0, 0], (len(e), 1)))
        result = ape(copy.deepcopy(evo_ref), evo_est, PoseRelation.translation_part, align=True, correct_scale=True)
        assert ate == pytest.approx(result.stats["rmse"], rel=1e-6)
        assert ate < 0.1 * path_length(ref) + 0.01, (ate, path_length(ref))
    # training uses only registered frames, and says so
    ds = SequenceDataset([tum_sequence.root], 96, 128, (-1, 1), use_colmap=True, augment=False)
    targets = {s.target for s in ds.samples}
    assert targets and not targets & set(doc["unregistered"])
    assert "without COLMAP poses" in ds.report[0]
    # relative poses are metric: the dataset's translation matches the ground-truth motion between neighbours
    sample = ds[0]
    ref = ds.samples[0]
    truth = np.linalg.inv(tum_sequence.frames[ref.sources[1]].odometry) @ tum_sequence.frames[ref.target].odometry
    got = sample["colmap_pose"][1].numpy()
    assert np.linalg.norm(got[:3, 3] - truth[:3, 3]) < 0.3 * np.linalg.norm(truth[:3, 3]) + 0.01
