"""Write ROS 2 bags (sqlite3 or MCAP) and ROS 1 bags from numpy data with ``rosbags``, no ROS install needed.

Used to build sample and test bags from folder datasets, and by the evaluation to write its output bag. The caller
gives every header stamp and frame_id; the log time defaults to the header stamp. The bag is written to a temporary
path next to the target and moved into place on close, so a failed write never leaves a half bag behind and an
existing bag is never overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.point_cloud import pack_points
from depth_estimation_ros.frame.projection import matrix_to_quaternion
from depth_estimation_ros.messages.image_codec import encode_image

BAG_FORMATS = ("sqlite3", "mcap", "ros1")

_TF_MESSAGE_DEF = "geometry_msgs/TransformStamped[] transforms"


class BagWriteError(InputError):
    """A bag cannot be written as asked; the message names the problem and the fix."""


def bag_format_for_path(path: str | Path, requested: str | None = None) -> str:
    """The bag format for a target path: a ``.bag`` suffix means ROS 1, else ``requested`` or sqlite3."""
    if requested:
        if requested not in BAG_FORMATS:
            raise BagWriteError(f"bag format '{requested}' is unknown; choose one of {', '.join(BAG_FORMATS)}")
        if (requested == "ros1") != (Path(path).suffix == ".bag"):
            raise BagWriteError(f"bag path '{path}' and format '{requested}' disagree: ROS 1 bags end in .bag, "
                                "ROS 2 bags are folders (no .bag suffix)")
        return requested
    return "ros1" if Path(path).suffix == ".bag" else "sqlite3"


def _typestore(ros1: bool):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    if ros1:
        store = get_typestore(Stores.ROS1_NOETIC)
        if "tf2_msgs/msg/TFMessage" not in store.types:
            store.register(get_types_from_msg(_TF_MESSAGE_DEF, "tf2_msgs/msg/TFMessage"))
        return store
    return get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST)


def _transient_local_qos():
    """The QoS a /tf_static publisher offers (reliable, transient local, keep last 1) so players latch it."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


class BagWriter:
    """``with BagWriter(path, "mcap") as bag: bag.write_image(...)``.

    Formats: ``sqlite3`` / ``mcap`` (ROS 2 bag folder) and ``ros1`` (a ``.bag`` file).
    """

    def __init__(self, path: str | Path, bag_format: str | None = None) -> None:
        self.path = Path(path)
        self.format = bag_format_for_path(self.path, bag_format)
        if self.path.exists():
            raise BagWriteError(f"'{self.path}' exists already; choose a new output path (bags are never overwritten)")
        self.ros1 = self.format == "ros1"
        self.typestore = _typestore(self.ros1)
        self._tmp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        self._writer = None
        self._connections: dict[str, object] = {}
        self._seq: dict[str, int] = {}

    # -------------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> BagWriter:
        if self._tmp.exists():
            shutil.rmtree(self._tmp) if self._tmp.is_dir() else self._tmp.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.ros1:
            from rosbags.rosbag1 import Writer as Writer1

            self._writer = Writer1(self._tmp)
        else:
            from rosbags.rosbag2 import StoragePlugin
            from rosbags.rosbag2 import Writer as Writer2

            plugin = StoragePlugin.MCAP if self.format == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer2(self._tmp, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            try:
                self._writer.close()
            finally:
                if self._tmp.is_dir():
                    shutil.rmtree(self._tmp, ignore_errors=True)
                else:
                    self._tmp.unlink(missing_ok=True)
            return
        self._writer.close()
        if not self.ros1:
            # rosbag2 names the storage file after the folder; keep the final name consistent
            for f in self._tmp.iterdir():
                if f.name.startswith(self._tmp.name):
                    f.rename(self._tmp / (self.path.name + f.name[len(self._tmp.name):]))
            meta = self._tmp / "metadata.yaml"
            meta.write_text(meta.read_text().replace(self._tmp.name, self.path.name))
        os.replace(self._tmp, self.path)

    # -------------------------------------------------------------------------------------------- raw access
    def connection(self, topic: str, msgtype: str, typestore=None, latching: bool = False):
        """The connection for topic (created on first use with the given typestore's definition of msgtype)."""
        if topic in self._connections:
            return self._connections[topic]
        store = typestore or self.typestore
        if self.ros1:
            conn = self._writer.add_connection(topic, msgtype, typestore=store, latching=1 if latching else None)
        else:
            qos = [_transient_local_qos()] if latching else []
            conn = self._writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=qos)
        self._connections[topic] = conn
        return conn

    def write_raw(self, topic: str, msgtype: str, log_time_ns: int, raw: bytes, typestore=None) -> None:
        """Copy an already serialised message (same serialisation as this bag: CDR for ROS 2, ROS 1 otherwise)."""
        self._writer.write(self.connection(topic, msgtype, typestore), int(log_time_ns), raw)

    def write_message(self, topic: str, message, log_time_ns: int, latching: bool = False) -> None:
        msgtype = message.__msgtype__
        conn = self.connection(topic, msgtype, latching=latching)
        data = self.typestore.serialize_ros1(message, msgtype) if self.ros1 else \
            self.typestore.serialize_cdr(message, msgtype)
        self._writer.write(conn, int(log_time_ns), data)

    # -------------------------------------------------------------------------------------------- builders
    def _type(self, name: str):
        return self.typestore.types[name]

    def header(self, topic: str, stamp_ns: int, frame_id: str):
        stamp = self._type("builtin_interfaces/msg/Time")(sec=int(stamp_ns // 1_000_000_000),
                                                           nanosec=int(stamp_ns % 1_000_000_000))
        if self.ros1:
            seq = self._seq.get(topic, 0)
            self._seq[topic] = seq + 1
            return self._type("std_msgs/msg/Header")(seq=seq, stamp=stamp, frame_id=frame_id)
        return self._type("std_msgs/msg/Header")(stamp=stamp, frame_id=frame_id)

    # -------------------------------------------------------------------------------------------- typed writers
    def write_image(self, topic: str, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str,
                    log_time_ns: int | None = None) -> None:
        """Raw sensor_msgs/Image: rgb8 / bgr8 (HxWx3 uint8, given in that channel order), mono8, 16UC1, 32FC1."""
        enc = encode_image(array, encoding)
        msg = self._type("sensor_msgs/msg/Image")(
            header=self.header(topic, stamp_ns, frame_id), height=enc.height, width=enc.width,
            encoding=enc.encoding, is_bigendian=enc.is_bigendian, step=enc.step,
            data=np.frombuffer(enc.data, dtype=np.uint8),
        )
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_compressed_bytes(self, topic: str, stamp_ns: int, frame_id: str, payload: bytes, fmt: str,
                               log_time_ns: int | None = None) -> None:
        """sensor_msgs/CompressedImage carrying an already encoded file as-is (e.g. a camera's JPEG), no re-encoding;
        ``fmt`` is 'jpeg' or 'png'."""
        if fmt not in ("jpeg", "png"):
            raise BagWriteError(f"compressed format '{fmt}' is not supported; use jpeg or png")
        msg = self._type("sensor_msgs/msg/CompressedImage")(
            header=self.header(topic, stamp_ns, frame_id), format=f"rgb8; {fmt} compressed bgr8",
            data=np.frombuffer(payload, dtype=np.uint8),
        )
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_compressed_image(self, topic: str, stamp_ns: int, frame_id: str, rgb: np.ndarray,
                               fmt: str = "jpeg", quality: int = 95, log_time_ns: int | None = None) -> None:
        """sensor_msgs/CompressedImage from HxWx3 uint8 RGB (jpeg or png, image_transport 'compressed' style)."""
        if fmt not in ("jpeg", "png"):
            raise BagWriteError(f"compressed format '{fmt}' is not supported; use jpeg or png")
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
        if not ok:
            raise BagWriteError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
        msg = self._type("sensor_msgs/msg/CompressedImage")(
            header=self.header(topic, stamp_ns, frame_id), format=f"rgb8; {fmt} compressed bgr8",
            data=buf.reshape(-1).astype(np.uint8),
        )
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_depth(self, topic: str, stamp_ns: int, frame_id: str, depth_m: np.ndarray, encoding: str = "32FC1",
                    log_time_ns: int | None = None) -> None:
        """Depth image from HxW metres: 32FC1 as given (REP 118), or 16UC1 millimetres (non-finite / <= 0 -> 0)."""
        depth = np.asarray(depth_m, dtype=np.float32)
        if encoding == "16UC1":
            valid = np.isfinite(depth) & (depth > 0)
            mm = np.where(valid, np.rint(depth * 1000.0), 0)
            if mm.max(initial=0) > 65535:
                raise BagWriteError("depth beyond 65.535 m does not fit 16UC1 millimetres; use 32FC1")
            self.write_image(topic, stamp_ns, frame_id, mm.astype(np.uint16), "16UC1", log_time_ns)
        elif encoding == "32FC1":
            self.write_image(topic, stamp_ns, frame_id, depth, "32FC1", log_time_ns)
        else:
            raise BagWriteError(f"depth encoding '{encoding}' is not supported; use 16UC1 or 32FC1")

    def write_camera_info(self, topic: str, stamp_ns: int, frame_id: str, camera: PinholeCamera,
                          log_time_ns: int | None = None) -> None:
        """sensor_msgs/CameraInfo with K, P, D (plumb_bob when D is given) and identity R."""
        d = np.asarray(camera.d, dtype=np.float64)
        model = camera.distortion_model or ("plumb_bob" if d.size else "")
        roi = self._type("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0,
                                                             do_rectify=False)
        fields = {"d": d, "k": camera.k.reshape(-1).copy(), "r": np.eye(3).reshape(-1),
                  "p": camera.p.reshape(-1).copy()}
        if self.ros1:
            fields = {k.upper(): v for k, v in fields.items()}
        msg = self._type("sensor_msgs/msg/CameraInfo")(
            header=self.header(topic, stamp_ns, frame_id), height=camera.height, width=camera.width,
            distortion_model=model, binning_x=0, binning_y=0, roi=roi, **fields,
        )
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_point_cloud(self, topic: str, stamp_ns: int, frame_id: str, xyz: np.ndarray,
                          rgb: np.ndarray | None = None, log_time_ns: int | None = None) -> None:
        """PointCloud2 of float32 x, y, z (+ packed rgb from uint8 RGB of the same shape), in the node's layout
        (point_cloud.pack_points: point_step 16, or 32 with colour). Nx3 gives an unorganised cloud (height 1),
        HxWx3 an organised one; is_dense is false when any point is NaN."""
        pts = np.asarray(xyz, dtype=np.float32)
        if pts.ndim == 2 and pts.shape[1] == 3:
            height, width = 1, pts.shape[0]
        elif pts.ndim == 3 and pts.shape[2] == 3:
            height, width = pts.shape[:2]
        else:
            raise BagWriteError(f"point array of shape {pts.shape} is neither Nx3 nor HxWx3")
        packed = pack_points(pts, rgb)
        field_type = self._type("sensor_msgs/msg/PointField")
        fields = [field_type(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in packed.fields]
        msg = self._type("sensor_msgs/msg/PointCloud2")(
            header=self.header(topic, stamp_ns, frame_id), height=height, width=width, fields=fields,
            is_bigendian=False, point_step=packed.point_step, row_step=packed.point_step * width,
            data=np.asarray(packed.data, dtype=np.uint8), is_dense=bool(np.all(np.isfinite(pts))),
        )
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_transforms(self, stamp_ns: int, transforms: list[tuple[str, str, np.ndarray]],
                         topic: str = "/tf_static", log_time_ns: int | None = None) -> None:
        """tf2_msgs/TFMessage of (parent, child, T_parent_child 4x4) transforms (latched on ROS 1 for /tf_static)."""
        ts_type = self._type("geometry_msgs/msg/TransformStamped")
        out = []
        for parent, child, matrix in transforms:
            m = np.asarray(matrix, dtype=np.float64)
            qx, qy, qz, qw = matrix_to_quaternion(m[:3, :3])
            transform = self._type("geometry_msgs/msg/Transform")(
                translation=self._type("geometry_msgs/msg/Vector3")(x=float(m[0, 3]), y=float(m[1, 3]),
                                                                   z=float(m[2, 3])),
                rotation=self._type("geometry_msgs/msg/Quaternion")(x=qx, y=qy, z=qz, w=qw),
            )
            out.append(ts_type(header=self.header(topic + "/" + child, stamp_ns, parent), child_frame_id=child,
                               transform=transform))
        msg = self._type("tf2_msgs/msg/TFMessage")(transforms=out)
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns,
                           latching=topic.endswith("tf_static"))

    def write_odometry(self, topic: str, stamp_ns: int, frame_id: str, child_frame_id: str, pose: np.ndarray,
                       log_time_ns: int | None = None) -> None:
        """nav_msgs/Odometry: the 4x4 pose of ``child_frame_id`` in ``frame_id``; zero twist, zero covariance
        (unknown)."""
        t = self.typestore.types
        m = np.asarray(pose, dtype=np.float64)
        qx, qy, qz, qw = matrix_to_quaternion(m[:3, :3])
        vector = t["geometry_msgs/msg/Vector3"]
        msg = t["nav_msgs/msg/Odometry"](
            header=self.header(topic, stamp_ns, frame_id), child_frame_id=child_frame_id,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=t["geometry_msgs/msg/Pose"](
                    position=t["geometry_msgs/msg/Point"](x=float(m[0, 3]), y=float(m[1, 3]), z=float(m[2, 3])),
                    orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)),
                covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](linear=vector(x=0.0, y=0.0, z=0.0),
                                                   angular=vector(x=0.0, y=0.0, z=0.0)),
                covariance=np.zeros(36)))
        self.write_message(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)
