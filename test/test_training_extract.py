"""depth-extract on bags written in all three formats from the shared real data (no mocks: rosbags end to end)."""


import cv2
import numpy as np
import pytest
from depth_estimation_training.extract import ExtractionError, ExtractOptions, extract_bag, main
from depth_estimation_training.sequence import Frame, Sequence, load_sequence, write_image
from shared_data import DATA, tum_keyframe_poses

from depth_estimation_ros.data.bag_writing import BagWriter
from depth_estimation_ros.data.dataset_bags import KITTI_TOPICS, TUM_TOPICS, write_kitti_lidar_bag, write_tum_bag
from depth_estimation_ros.frame.camera_model import PinholeCamera

KITTI_DRIVE = DATA / "kitti_drive0023_tiny" / "KITTI_tiny" / "2011_09_26" / "2011_09_26_drive_0023_sync"
TUM = DATA / "tum_fr3_cabinet_keyframes"


def _bag_path(tmp_path, fmt, name):
    return tmp_path / (f"{name}.bag" if fmt == "ros1" else name)


@pytest.mark.parametrize("fmt,compressed", [("ros1", None), ("sqlite3", "jpeg"), ("mcap", None)])
def test_kitti_lidar_bag_gives_frames_and_projected_sparse_depth(tmp_path, fmt, compressed):
    bag = _bag_path(tmp_path, fmt, "drive0023")
    topics = write_kitti_lidar_bag(KITTI_DRIVE, bag, fmt, compressed=compressed)
    summary = extract_bag(bag, tmp_path / "out", ExtractOptions(lidar_topic=KITTI_TOPICS["lidar"], progress=False))
    assert summary.kept == 7 and summary.dropped_static == 0 and summary.with_sparse_depth == 7
    seq = load_sequence(summary.sequences[0])
    assert (seq.width, seq.height) == (1242, 375) and len(seq.frames) == 7
    assert np.allclose(seq.intrinsics, [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]], atol=1e-3)
    assert seq.summary["image_topic"] == topics["image"]
    # the cloud is the shipped projected velodyne depth back-projected and moved to velo_link: projecting it again
    # with the bag's /tf_static must land on the same pixels with the same depth
    shipped = np.load(KITTI_DRIVE / "proj_depth" / "velodyne" / "image_02" / "0000000003.npz")["velodyne_depth"]
    ours = seq.read_sparse_depth(3)
    both = (shipped > 0) & (ours > 0)
    assert both.sum() > 0.95 * (shipped > 0).sum()
    assert np.median(np.abs(ours[both] - shipped[both]) / shipped[both]) < 1e-3
    rgb = seq.read_rgb(3)
    original = cv2.cvtColor(cv2.imread(str(KITTI_DRIVE / "image_02" / "data" / "0000000003.png")), cv2.COLOR_BGR2RGB)
    tolerance = 12 if compressed else 0  # JPEG
    assert np.abs(rgb.astype(int) - original).mean() <= tolerance


def test_tum_bag_with_compressed_images_and_depth_topic(tmp_path):
    bag = tmp_path / "tum"
    topics = write_tum_bag(TUM, bag, "mcap", compressed="jpeg", max_frames=6)
    summary = extract_bag(bag, tmp_path / "out", ExtractOptions(depth_topic=TUM_TOPICS["depth"], progress=False))
    seq = load_sequence(summary.sequences[0])
    assert len(seq.frames) == 6 and summary.with_sparse_depth == 6
    depth = seq.read_sparse_depth(0)
    truth = cv2.imread(str(TUM / "depth" / "0000_depth_raw.png"), cv2.IMREAD_UNCHANGED) / 5000.0
    valid = truth > 0
    assert np.abs(depth[valid] - truth[valid]).max() < 2e-3  # 16UC1 millimetres in the bag
    assert seq.summary["image_topic"] == topics["image"]


def test_static_frames_dropped_distortion_removed_and_segments_split(tmp_path):
    """A hand-made bag: a distorted camera, a frame repeated (camera stopped) and a 5 s gap."""
    images = [cv2.cvtColor(cv2.imread(str(TUM / "rgb" / f"{i:04d}_rgb_raw.jpg")), cv2.COLOR_BGR2RGB)
              for i in range(8)]
    k = np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])
    camera = PinholeCamera(640, 480, k, d=(0.1, -0.05, 0.001, 0.0, 0.0), distortion_model="plumb_bob")
    order = [0, 1, 1, 1, 2, 3, 4, 5, 6, 7]  # frame 1 repeated: static
    stamps = [int(1e9 * (100 + 0.5 * i + (5.0 if i >= 6 else 0.0))) for i in range(len(order))]  # gap before 6th
    bag = tmp_path / "handmade.bag"
    with BagWriter(bag, "ros1") as w:
        for idx, stamp in zip(order, stamps):
            w.write_compressed_image("/cam/image_raw/compressed", stamp, "cam", images[idx], "png")
            w.write_camera_info("/cam/camera_info", stamp, "cam", camera)
    summary = extract_bag(bag, tmp_path / "out", ExtractOptions(progress=False))
    assert summary.dropped_static == 2
    assert summary.undistorted
    assert len(summary.sequences) == 2 and summary.kept == 8
    seq = load_sequence(summary.sequences[0])
    assert [f.image for f in seq.frames] == [f"images/{i:06d}.png" for i in range(4)]
    # undistorted with OpenCV's model: a pixel of the output maps back to the distorted source position
    undistorted = seq.read_rgb(0)
    expected = cv2.undistort(images[0], k, np.array(camera.d), None, k)
    assert np.abs(undistorted.astype(int) - expected).mean() < 2.0
    assert "static" in summary.text()


def test_rectified_topic_is_not_undistorted_again(tmp_path):
    """image_proc's image_rect comes with the raw calibration (D non-zero): no second undistortion, and the
    sequence's intrinsics are the rectified ones, P[:3,:3]."""
    images = [cv2.cvtColor(cv2.imread(str(TUM / "rgb" / f"{i:04d}_rgb_raw.jpg")), cv2.COLOR_BGR2RGB) for i in range(3)]
    k = np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])
    p = np.array([[520.0, 0, 318.0, 0], [0, 522.0, 250.0, 0], [0, 0, 1, 0]])
    camera = PinholeCamera(640, 480, k, p, d=(0.1, -0.05, 0.001, 0.0, 0.0), distortion_model="plumb_bob")
    bag = tmp_path / "rect.bag"
    with BagWriter(bag, "ros1") as w:
        for i, rgb in enumerate(images):
            stamp = int(1e9 * (100 + 0.5 * i))
            w.write_image("/cam/image_rect_color", stamp, "cam", rgb, "rgb8")
            w.write_camera_info("/cam/camera_info", stamp, "cam", camera)
    summary = extract_bag(bag, tmp_path / "out", ExtractOptions(progress=False))
    assert not summary.undistorted
    seq = load_sequence(summary.sequences[0])
    np.testing.assert_allclose(seq.intrinsics, p[:, :3])
    np.testing.assert_array_equal(seq.read_rgb(0), images[0])


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    bag = tmp_path / "tum"
    write_tum_bag(TUM, bag, "sqlite3", max_frames=2)
    with pytest.raises(ExtractionError, match="2 image topics .* choose one with --image-topic"):
        extract_bag(bag, tmp_path / "out", ExtractOptions(progress=False))
    with pytest.raises(ExtractionError, match="--min-segment-frames"):
        extract_bag(bag, tmp_path / "out", ExtractOptions(image_topic=TUM_TOPICS["image"], progress=False))
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["tf", "odometry_msg"])
def test_odometry_poses_and_odometry_based_static_frames(tmp_path, source):
    """Camera poses from /tf (odom -> camera) or nav_msgs/Odometry (odom -> base_link, with base_link -> camera
    in /tf_static) land in the sequence as camera-to-world; a repeated pose is a static frame."""
    truth = tum_keyframe_poses()[1][:5]
    images = [cv2.cvtColor(cv2.imread(str(TUM / "rgb" / f"{i:04d}_rgb_raw.jpg")), cv2.COLOR_BGR2RGB)
              for i in range(5)]
    camera = PinholeCamera(640, 480, np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]]))
    base_to_cam = np.eye(4)
    base_to_cam[:3, 3] = (0.1, 0.0, 0.3)
    order = [0, 1, 2, 2, 3, 4]  # frame 2 twice: same pose (the image differs slightly by noise)
    bag = tmp_path / "odo"
    rng = np.random.default_rng(0)
    with BagWriter(bag, "mcap") as w:
        w.write_transforms(int(100e9), [("base_link", "cam", base_to_cam)])
        for n, idx in enumerate(order):
            stamp = int((100 + 0.2 * n) * 1e9)
            noisy = np.clip(images[idx].astype(int) + rng.integers(-3, 4, images[idx].shape), 0, 255).astype(np.uint8)
            w.write_image("/cam/image_raw", stamp, "cam", noisy, "rgb8")
            w.write_camera_info("/cam/camera_info", stamp, "cam", camera)
            cam_to_world = truth[idx]
            if source == "tf":
                w.write_transforms(stamp, [("odom", "cam", cam_to_world)], topic="/tf")
            else:
                base = cam_to_world @ np.linalg.inv(base_to_cam)
                t = w.typestore.types
                from depth_estimation_ros.frame.projection import matrix_to_quaternion

                qx, qy, qz, qw = matrix_to_quaternion(base[:3, :3])
                pose = t["geometry_msgs/msg/Pose"](
                    position=t["geometry_msgs/msg/Point"](x=base[0, 3], y=base[1, 3], z=base[2, 3]),
                    orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
                twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                                     angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0))
                msg = t["nav_msgs/msg/Odometry"](
                    header=w.header("/odom", stamp, "odom"), child_frame_id="base_link",
                    pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                    twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))
                w.write_message("/odom", msg, stamp)
    opt = ExtractOptions(odometry_frame="odom", progress=False) if source == "tf" else \
        ExtractOptions(odometry_topic="/odom", progress=False)
    summary = extract_bag(bag, tmp_path / "out", opt)
    assert summary.dropped_static == 1 and summary.kept == 5 and summary.with_odometry == 5
    seq = load_sequence(summary.sequences[0])
    for frame, idx in zip(seq.frames, [0, 1, 2, 3, 4]):
        assert np.allclose(frame.odometry, truth[idx], atol=1e-6)


def test_grey_frames_are_stored_as_one_channel_and_read_back_unchanged(tmp_path):
    grey = cv2.imread(str(DATA / "kitti_odometry00_first200" / "image_0" / "000000.png"), cv2.IMREAD_GRAYSCALE)
    colour = cv2.cvtColor(cv2.imread(str(sorted((DATA / "tum_fr3_cabinet_keyframes" / "rgb").glob("*.jpg"))[0])),
                          cv2.COLOR_BGR2RGB)
    frames = {"grey.png": np.repeat(grey[..., None], 3, axis=2), "colour.png": colour}
    for name, rgb in frames.items():
        write_image(tmp_path / name, rgb)
    assert cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    assert cv2.imread(str(tmp_path / "colour.png"), cv2.IMREAD_UNCHANGED).shape[2] == 3
    seq = Sequence(tmp_path, "s", 0, 0, np.eye(3), [Frame(name, float(i)) for i, name in enumerate(frames)])
    for i, rgb in enumerate(frames.values()):
        np.testing.assert_array_equal(seq.read_rgb(i), rgb)
