"""Bag writing and reading round trips in ROS 1, ROS 2 sqlite3 and ROS 2 MCAP; dataset readers on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.image import message_to_cvimage
from shared_data import DATA

from depth_estimation_ros.data.bag_reading import (
    BagError,
    BagReader,
    TopicNotFoundError,
    camera_info_topic_for,
)
from depth_estimation_ros.data.bag_writing import BagWriteError, BagWriter
from depth_estimation_ros.data.datasets import (
    KittiFrames,
    KittiRawSequence,
    TumRgbdSequence,
    kitti_velodyne_to_camera,
    open_dataset,
)
from depth_estimation_ros.data.transform_tree import TransformNotFoundError, TransformStore
from depth_estimation_ros.frame.camera_model import PinholeCamera, camera_from_camera_info
from depth_estimation_ros.frame.projection import matrix_to_quaternion, quaternion_to_matrix
from depth_estimation_ros.messages.image_codec import ImageDecodeError
from depth_estimation_ros.messages.message_decoding import (
    depth_from_image_message,
    header_stamp_ns,
    rgb_from_image_message,
    xyz_from_point_cloud_message,
)

KITTI_DRIVE = DATA / "kitti_drive0023_tiny" / "KITTI_tiny" / "2011_09_26" / "2011_09_26_drive_0023_sync"
TUM = DATA / "tum_fr3_cabinet_keyframes"
KITTI_FRAMES = DATA / "kitti_drive0001_frames50_100"
FORMATS = [("ros1", "sample.bag"), ("sqlite3", "sample_sqlite3"), ("mcap", "sample_mcap")]


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _transform(rotation: np.ndarray, translation) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation
    return out


@pytest.fixture(scope="module")
def sample_data():
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 9.0, (6, 10)).astype(np.float32)
    depth[1, 2] = np.nan
    depth[3, 4] = 0.0
    camera = PinholeCamera.from_camera_info_fields(10, 6, [8.0, 0, 4.5, 0, 9.0, 2.5, 0, 0, 1], d=(0.1, -0.01, 0, 0, 0))
    cloud = rng.normal(0, 5, (50, 3)).astype(np.float32)
    t_base_velo = _transform(_rotation(0.1, -0.2, 0.3), [0.5, -0.1, 1.7])
    t_velo_cam = _transform(_rotation(-np.pi / 2, 0.0, -np.pi / 2), [0.27, 0.0, -0.08])
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, 128 + 0 * xx], axis=2).astype(np.uint8)
    return {"rgb": rgb, "smooth": smooth, "depth": depth, "camera": camera, "cloud": cloud, "t_base_velo": t_base_velo,
            "t_velo_cam": t_velo_cam}


def _write_sample(path: Path, fmt: str, d: dict) -> None:
    stamp = 1_700_000_000_123_456_789
    with BagWriter(path, fmt) as bag:
        bag.write_transforms(stamp, [("base_link", "velo_link", d["t_base_velo"]),
                                     ("velo_link", "camera_optical", d["t_velo_cam"])])
        for i in range(3):
            t = stamp + i * 100_000_000
            bag.write_image("/cam/image_raw", t, "camera_optical", d["rgb"], "rgb8")
            bag.write_image("/cam/image_bgr", t, "camera_optical", d["rgb"][..., ::-1], "bgr8")
            bag.write_compressed_image("/cam/image_raw/compressed", t, "camera_optical", d["rgb"], "png")
            bag.write_compressed_image("/cam/jpeg/compressed", t, "camera_optical", d["smooth"], "jpeg", quality=95)
            bag.write_camera_info("/cam/camera_info", t, "camera_optical", d["camera"])
            bag.write_depth("/depth/mm", t, "camera_optical", d["depth"], "16UC1")
            bag.write_depth("/depth/m", t, "camera_optical", d["depth"], "32FC1")
            bag.write_point_cloud("/velodyne_points", t, "velo_link", d["cloud"])
            bag.write_point_cloud("/organised", t, "camera_optical", d["cloud"][:48].reshape(6, 8, 3),
                                  rgb=np.full((6, 8, 3), 200, np.uint8))


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_round_trip_all_formats(tmp_path, sample_data, fmt, name):
    d = sample_data
    path = tmp_path / name
    _write_sample(path, fmt, d)
    assert path.exists() and not list(tmp_path.glob(".*partial*"))
    with BagReader(path) as bag:
        assert bag.is_ros1 == (fmt == "ros1")
        assert bag.topics["/cam/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
        assert bag.message_counts["/cam/image_raw"] == 3
        assert bag.message_counts["/tf_static"] == 1
        stamps, seen = [], set()
        for m in bag.messages():
            seen.add(m.topic)
            if m.topic == "/cam/image_raw":
                stamps.append(m.log_time_ns)
                assert header_stamp_ns(m.message) == m.log_time_ns
                assert m.message.header.frame_id == "camera_optical"
                np.testing.assert_array_equal(rgb_from_image_message(m.message), d["rgb"])
            elif m.topic in ("/cam/image_bgr", "/cam/image_raw/compressed"):
                np.testing.assert_array_equal(rgb_from_image_message(m.message), d["rgb"])
            elif m.topic == "/cam/jpeg/compressed":
                diff = np.abs(rgb_from_image_message(m.message).astype(int) - d["smooth"].astype(int))
                assert diff.mean() < 3  # lossy, but the same picture
            elif m.topic == "/depth/mm":
                depth = depth_from_image_message(m.message)
                valid = np.isfinite(d["depth"]) & (d["depth"] > 0)
                np.testing.assert_allclose(depth[valid], d["depth"][valid], atol=5e-4)
                assert np.isnan(depth[1, 2]) and np.isnan(depth[3, 4])
            elif m.topic == "/depth/m":
                depth = depth_from_image_message(m.message)
                valid = np.isfinite(d["depth"]) & (d["depth"] > 0)
                np.testing.assert_array_equal(depth[valid], d["depth"][valid])
                assert np.isnan(depth[1, 2]) and np.isnan(depth[3, 4])
            elif m.topic == "/cam/camera_info":
                cam = camera_from_camera_info(m.message)
                np.testing.assert_array_equal(cam.k, d["camera"].k)
                np.testing.assert_array_equal(cam.p, d["camera"].p)
                assert cam.d == d["camera"].d and cam.distortion_model == "plumb_bob"
                assert (cam.width, cam.height) == (10, 6)
            elif m.topic == "/velodyne_points":
                np.testing.assert_array_equal(xyz_from_point_cloud_message(m.message), d["cloud"])
            elif m.topic == "/organised":
                assert (m.message.height, m.message.width, m.message.point_step) == (6, 8, 32)
                np.testing.assert_array_equal(xyz_from_point_cloud_message(m.message), d["cloud"][:48])
        assert stamps == sorted(stamps) and len(stamps) == 3
        assert len(seen) == len(bag.topics)
        store = bag.read_transforms()
        expected = np.linalg.inv(d["t_velo_cam"]) @ np.linalg.inv(d["t_base_velo"])
        np.testing.assert_allclose(store.lookup("camera_optical", "base_link"), expected, atol=1e-9)
        np.testing.assert_allclose(store.lookup("base_link", "camera_optical"), np.linalg.inv(expected), atol=1e-9)


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
def test_independent_reader_decodes_written_bags(tmp_path, sample_data, fmt, name):
    """rosbags' own AnyReader + rosbags-image decode what BagWriter wrote (no use of our reader)."""
    from rosbags.typesys import Stores, get_typestore

    path = tmp_path / name
    _write_sample(path, fmt, sample_data)
    with AnyReader([path], default_typestore=get_typestore(Stores.LATEST)) as reader:
        conns = [c for c in reader.connections if c.topic == "/cam/image_raw"]
        _, _, raw = next(reader.messages(connections=conns))
        msg = reader.deserialize(raw, conns[0].msgtype)
        np.testing.assert_array_equal(message_to_cvimage(msg, "rgb8"), sample_data["rgb"])


def test_point_cloud_reader_handles_padding_doubles_and_big_endian(sample_data):
    """A hand-built PointCloud2 with float64 fields, padding, row_step padding and big-endian data."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    field = store.types["sensor_msgs/msg/PointField"]
    header = store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0),
                                                 frame_id="f")
    xyz = np.array([[1, 2, 3], [np.nan, 0, 0], [4, 5, 6], [7, 8, 9]], dtype=np.float64)
    dtype = np.dtype({"names": ["i", "z", "x", "y"], "formats": [">f4", ">f8", ">f8", ">f8"],
                      "offsets": [0, 4, 12, 20], "itemsize": 36})
    points = np.zeros(4, dtype=dtype)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rows = points.tobytes()
    data = rows[:72] + b"\0" * 8 + rows[72:] + b"\0" * 8  # 2 rows of 2 points, row_step 80
    msg = store.types["sensor_msgs/msg/PointCloud2"](
        header=header, height=2, width=2,
        fields=[field(name="i", offset=0, datatype=7, count=1), field(name="z", offset=4, datatype=8, count=1),
                field(name="x", offset=12, datatype=8, count=1), field(name="y", offset=20, datatype=8, count=1)],
        is_bigendian=True, point_step=36, row_step=80, data=np.frombuffer(data, np.uint8), is_dense=False)
    out = xyz_from_point_cloud_message(msg)
    np.testing.assert_array_equal(out, xyz[[0, 2, 3]].astype(np.float32))


def test_missing_topic_lists_the_bag_topics(tmp_path, sample_data):
    path = tmp_path / "b"
    _write_sample(path, "sqlite3", sample_data)
    with BagReader(path) as bag:
        with pytest.raises(TopicNotFoundError) as err:
            list(bag.messages(["/camera/nope"]))
        assert "/camera/nope" in str(err.value) and "/cam/image_raw" in str(err.value)
        with pytest.raises(TopicNotFoundError, match="expected sensor_msgs/msg/PointCloud2"):
            bag.require_topic("/cam/image_raw", ["sensor_msgs/msg/PointCloud2"])
        with pytest.raises(TransformNotFoundError, match="no transform from 'camera_optical' to 'map'.*base_link"):
            bag.read_transforms().lookup("map", "camera_optical")


def test_not_a_bag_and_no_overwrite(tmp_path, sample_data):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing.bag")
    (tmp_path / "folder").mkdir()
    with pytest.raises(BagError, match="metadata.yaml"):
        BagReader(tmp_path / "folder")
    with pytest.raises(BagWriteError, match="exists already"):
        BagWriter(tmp_path / "folder", "mcap")
    with pytest.raises(BagWriteError, match="disagree"):
        BagWriter(tmp_path / "x", "ros1")
    # a failed write leaves nothing behind
    with pytest.raises(RuntimeError), BagWriter(tmp_path / "partial", "mcap") as bag:
        bag.write_image("/a", 1, "f", sample_data["rgb"], "rgb8")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_depth_decoding_rejects_colour_images(sample_data, tmp_path):
    path = tmp_path / "c.bag"
    _write_sample(path, "ros1", sample_data)
    with BagReader(path) as bag:
        msg = next(bag.messages(["/cam/image_raw"])).message
        with pytest.raises(ImageDecodeError, match="not a depth encoding"):
            depth_from_image_message(msg)


def test_transform_store_chains_and_uses_nearest_dynamic_sample():
    store = TransformStore()
    a = _transform(_rotation(0.2, 0.1, -0.4), [1, 2, 3])
    store.add("/odom", "base", a, static=True)
    for t, x in ((0, 0.0), (10, 1.0), (20, 2.0)):
        store.add("map", "odom", _transform(np.eye(3), [x, 0, 0]), stamp_ns=t, static=False)
    np.testing.assert_allclose(store.lookup("map", "base", stamp_ns=11), _transform(np.eye(3), [1, 0, 0]) @ a)
    np.testing.assert_allclose(store.lookup("base", "map", stamp_ns=19),
                               np.linalg.inv(_transform(np.eye(3), [2, 0, 0]) @ a))


def test_quaternion_round_trip():
    for angles in ((0.1, 0.2, 0.3), (np.pi, 0, 0), (0, np.pi, 0), (0, 0, np.pi), (-2.0, 1.0, 3.0)):
        r = _rotation(*angles)
        np.testing.assert_allclose(quaternion_to_matrix(*matrix_to_quaternion(r)), r, atol=1e-12)


# ------------------------------------------------------------------------------------------------ datasets


def test_tum_keyframes_reader():
    seq = TumRgbdSequence(TUM)
    assert len(seq) == 58
    frame = next(iter(seq))
    assert frame.rgb.shape == (480, 640, 3) and frame.depth.shape == (480, 640)
    assert (frame.camera.fx, frame.camera.fy, frame.camera.cx, frame.camera.cy) == (535.4, 539.2, 320.1, 247.6)
    valid = np.isfinite(frame.depth)
    assert 0.8 < valid.mean() < 0.9  # SOURCE.md: valid fraction 0.807-0.879
    assert 1.0 < np.median(frame.depth[valid]) < 1.8  # SOURCE.md: median 1.21-1.68 m
    assert frame.stamp_ns == 1341841278842700000
    assert isinstance(open_dataset(TUM), TumRgbdSequence)


def test_kitti_readers():
    raw = open_dataset(KITTI_DRIVE.parents[1])  # the date folder: finds the drive
    assert isinstance(raw, KittiRawSequence) and raw.ground_truth == "velodyne" and len(raw) == 7
    frame = next(iter(raw))
    assert frame.rgb.shape == (375, 1242, 3)
    np.testing.assert_allclose([frame.camera.fx, frame.camera.cx, frame.camera.cy], [721.5377, 609.5593, 172.854])
    assert 0.035 < np.isfinite(frame.depth).mean() < 0.045  # SOURCE.md: 0.0408-0.0413
    assert frame.stamp_ns % 1_000_000_000 == 287203584
    flat = open_dataset(KITTI_FRAMES)
    assert isinstance(flat, KittiFrames) and len(flat) == 2
    f = next(iter(flat))
    valid = np.isfinite(f.depth)
    assert 0.1 < valid.mean() < 0.3 and 4 < f.depth[valid].min() and f.depth[valid].max() < 90


def test_kitti_extrinsics_reproduce_the_other_cameras_projection():
    """Independent check of the velodyne->camera chain: points from image_02's projected scan, moved into
    image_03 with the calibration, land where TRI's own projection into image_03 put them."""
    from depth_estimation_ros.frame.projection import backproject_depth, lidar_depth_image, transform_points

    left, right = KittiRawSequence(KITTI_DRIVE, "image_02"), KittiRawSequence(KITTI_DRIVE, "image_03")
    t2 = kitti_velodyne_to_camera(left.calib_dir, 2)
    t3 = kitti_velodyne_to_camera(right.calib_dir, 3)
    f2, f3 = next(iter(left)), next(iter(right))
    velo = transform_points(np.linalg.inv(t2), backproject_depth(f2.depth, f2.camera))
    projected = lidar_depth_image(velo, t3, f3.camera)
    both = np.isfinite(projected) & np.isfinite(f3.depth)
    assert both.sum() > 5000
    rel = np.abs(projected[both] - f3.depth[both]) / f3.depth[both]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.01) > 0.9


def test_tum_benchmark_layout_associates_by_stamp(tmp_path):
    """rgb.txt / depth.txt layout (TUM benchmark), stamps offset by a few ms, one depth frame missing."""
    import shutil

    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    rgb_lines, depth_lines = ["# timestamp filename"], ["# timestamp filename"]
    for i, stamp in enumerate(("1341841278.842700", "1341841279.510700", "1341841280.182500")):
        shutil.copy(TUM / "rgb" / f"{i:04d}_rgb_raw.jpg", tmp_path / "rgb" / f"{stamp}.jpg")
        rgb_lines.append(f"{stamp} rgb/{stamp}.jpg")
        if i != 1:
            depth_stamp = f"{float(stamp) + 0.004:.6f}"
            shutil.copy(TUM / "depth" / f"{i:04d}_depth_raw.png", tmp_path / "depth" / f"{depth_stamp}.png")
            depth_lines.append(f"{depth_stamp} depth/{depth_stamp}.png")
    (tmp_path / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (tmp_path / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    seq = open_dataset(tmp_path)
    assert isinstance(seq, TumRgbdSequence) and len(seq) == 2
    frames = list(seq)
    assert [f.stamp_ns for f in frames] == [1341841278842700000, 1341841280182500000]
    reference = list(TumRgbdSequence(TUM).pairs)
    from depth_estimation_ros.data.datasets import TUM_DEPTH_SCALE, read_uint16_depth

    np.testing.assert_array_equal(frames[1].depth, read_uint16_depth(reference[2][3], TUM_DEPTH_SCALE))


@pytest.mark.parametrize("image, infos, expected", [
    ("/camera/color/image_raw/compressed", ["/camera/color/camera_info", "/camera/depth/camera_info"],
     "/camera/color/camera_info"),
    ("/cam/left/image_rect", ["/cam/left/info", "/cam/right/info"], "/cam/left/info"),  # same namespace
    ("/front/image", ["/calib/front"], "/calib/front"),  # the only one
    ("/front/image", ["/a/camera_info", "/b/camera_info"], None),  # a choice: the caller asks
])
def test_camera_info_topic_for_an_image_topic(image, infos, expected):
    """One rule for evaluation and extraction (they had two)."""
    assert camera_info_topic_for(image, infos) == expected
