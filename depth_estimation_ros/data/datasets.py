"""Readers for folder datasets with ground-truth depth: KITTI raw / KITTI depth, TUM RGB-D and 7-Scenes layouts.

Each reader yields ``DatasetFrame`` objects (RGB uint8, ground-truth depth in metres with NaN where there is none,
the camera, a capture stamp) in the datasets' native encodings:

- KITTI raw drive folder (``<date>/<drive>_sync/image_02/data/*.png``, calibration ``calib_cam_to_cam.txt`` one
  or two levels up): intrinsics from ``P_rect_02`` (or ``P_rect_03`` for image_03); ground truth from
  ``proj_depth/groundtruth/image_02/*.png`` (KITTI depth benchmark, uint16 / 256, 0 = none) or
  ``proj_depth/velodyne/image_02/*.png|*.npz`` (projected single scan; npz key ``velodyne_depth`` in metres,
  as in PackNet-SfM's KITTI_tiny); stamps from ``image_02/timestamps.txt``.
- KITTI flat frames (``rgb/*.png``, ``depth/*.png`` uint16 / 256, ``calib_cam_to_cam.txt``).
- TUM RGB-D: the benchmark layout (``rgb.txt``, ``depth.txt``, depth uint16 / 5000, associated by nearest stamp
  within 20 ms as TUM's associate.py does) or the keyframe layout (``rgb/NNNN_rgb_raw.jpg``,
  ``depth/NNNN_depth_raw.png``, stamps from ``truth_cam_poses.txt``). Intrinsics: TUM's published factory values
  for freiburg1/2/3 (default freiburg3, the registered-depth sequences), or passed explicitly.
- 7-Scenes: ``frame-NNNNNN.{color.*,depth.png,pose.txt}`` (see SevenScenesSequence).
- KITTI odometry calibration / poses and 7-Scenes intrinsics / poses parsers, shared with the training readers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.data.stamp_matching import associate_by_stamp
from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera

KITTI_DEPTH_SCALE = 256.0  # uint16 / 256 = metres (KITTI depth benchmark)
SEVEN_SCENES_DEPTH_SCALE = 1000.0  # uint16 millimetres (7-Scenes)
SEVEN_SCENES_RATE_HZ = 30.0  # Kinect v1 frame rate; 7-Scenes ships no stamps
TUM_DEPTH_SCALE = 5000.0  # uint16 / 5000 = metres (TUM RGB-D)

# TUM RGB-D published intrinsics (fx, fy, cx, cy), 640x480, https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats
TUM_INTRINSICS = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}


class DatasetError(InputError):
    """A data set (a dataset folder, or the training samples drawn from sequences) is not in a known layout, is
    incomplete or yields nothing usable; the message names what is missing and what to do."""


@dataclass
class DatasetFrame:
    name: str  # file stem, used in per-frame reports
    stamp_ns: int
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray | None  # HxW float32 metres, NaN = no ground truth
    camera: PinholeCamera
    number: int | None = None  # the dataset's own frame number (from the file name) where it has one


# ----------------------------------------------------------------------------------------------------------------
# file decoding


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image '{path}'")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_uint16_depth(path: Path, scale: float) -> np.ndarray:
    """uint16 PNG depth -> float32 metres (value / scale), NaN where the value is 0."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read depth image '{path}'")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(
            f"depth image '{path}' is {raw.dtype} with shape {raw.shape}; expected single-channel uint16"
        )
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[raw == 0] = np.nan
    return depth


def read_npz_depth(path: Path) -> np.ndarray:
    """PackNet-SfM projected velodyne depth: npz key ``velodyne_depth`` (or the only key), metres, 0 = none."""
    with np.load(path) as archive:
        key = "velodyne_depth" if "velodyne_depth" in archive.files else archive.files[0]
        depth = archive[key].astype(np.float32)
    depth[~(depth > 0)] = np.nan
    return depth


def parse_kitti_calibration(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v v v`` calibration file -> {key: float64 array}; non-numeric lines (calib_time) skipped."""
    out: dict[str, np.ndarray] = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line:
            continue
        key, values = line.split(":", 1)
        try:
            out[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            continue
    return out


def kitti_camera(calib_cam_to_cam: Path, camera_index: int = 2, image_size: tuple[int, int] | None = None
                 ) -> PinholeCamera:
    """Rectified camera from ``P_rect_0N``: K = P[:, :3], P = [K | 0] in that camera's own optical frame.

    The 4th column of KITTI's P_rect_0N is the offset from the rectified cam0 frame to camera N; expressing data
    in camera N's own frame (as a ROS camera driver would) removes it. ``image_size`` (width, height) defaults to
    ``S_rect_0N``.
    """
    calib = parse_kitti_calibration(calib_cam_to_cam)
    key = f"P_rect_0{camera_index}"
    if key not in calib:
        raise DatasetError(f"'{calib_cam_to_cam}' has no {key}; is this a KITTI calib_cam_to_cam.txt?")
    p = calib[key].reshape(3, 4)
    if image_size is None:
        size = calib.get(f"S_rect_0{camera_index}")
        if size is None:
            raise DatasetError(f"'{calib_cam_to_cam}' has no S_rect_0{camera_index}; pass the image size")
        image_size = (round(size[0]), round(size[1]))
    return PinholeCamera.from_camera_info_fields(image_size[0], image_size[1], p[:, :3].reshape(-1))


def kitti_odometry_intrinsics(calib_path: str | Path, camera_index: int = 0) -> np.ndarray:
    """3x3 K of a KITTI odometry ``calib.txt``, in any of the layouts the shared sets use.

    - ``P0: p00 .. p23`` keyed lines (the KITTI odometry benchmark): K = P<camera_index>[:, :3];
    - 12 numbers per line without keys (one 3x4 P per camera, in order): K from line ``camera_index``;
    - a plain 3x3 K (9 numbers, ``#`` comments allowed; the camera index must be 0).
    """
    path = Path(calib_path)
    if not path.is_file():
        raise DatasetError(f"no calibration file '{path}'; a KITTI odometry folder has calib.txt beside image_0/")
    keyed = {k: v for k, v in parse_kitti_calibration(path).items() if v.size and not k.startswith("#")}
    key = f"P{camera_index}"
    if keyed:
        if key not in keyed or keyed[key].size != 12:
            raise DatasetError(f"'{path}' has no 12-value {key}: line; keys present: {', '.join(sorted(keyed))}")
        return keyed[key].reshape(3, 4)[:, :3].copy()
    rows = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError as exc:
                raise DatasetError(f"'{path}': cannot read '{line[:40]}' as numbers ({exc})") from None
    if rows and all(len(r) == 12 for r in rows) and camera_index < len(rows):
        return np.array(rows[camera_index], dtype=np.float64).reshape(3, 4)[:, :3]
    values = [v for r in rows for v in r]
    if len(values) == 9 and camera_index == 0:
        return np.array(values, dtype=np.float64).reshape(3, 3)
    raise DatasetError(
        f"'{path}' is not a KITTI odometry calibration: expected 'P{camera_index}: <12 numbers>' lines, one 3x4 "
        f"matrix (12 numbers) per line, or a 3x3 K; found {len(rows)} line(s) of {sorted({len(r) for r in rows})} "
        "numbers"
    )


def read_kitti_odometry_poses(path: str | Path) -> np.ndarray:
    """KITTI odometry poses file (one row-major 3x4 camera-to-world matrix per line) -> (N, 4, 4) float64."""
    rows = np.loadtxt(Path(path), comments="#", ndmin=2)
    if rows.shape[1] != 12:
        raise DatasetError(f"'{path}' has {rows.shape[1]} values per line; a KITTI pose line has 12 (3x4)")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :] = rows.reshape(-1, 3, 4)
    return poses


def seven_scenes_intrinsics(path: str | Path) -> np.ndarray:
    """7-Scenes ``camera-intrinsics.txt`` (3x3 K as 3 rows) -> 3x3 float64."""
    values = np.loadtxt(Path(path), comments="#").reshape(-1)
    if values.size != 9:
        raise DatasetError(f"'{path}' holds {values.size} numbers; a 7-Scenes camera-intrinsics.txt holds a 3x3 K")
    return values.reshape(3, 3)


def read_seven_scenes_pose(path: str | Path) -> np.ndarray:
    """7-Scenes ``frame-NNNNNN.pose.txt`` (4x4 camera-to-world, metres) -> 4x4 float64."""
    values = np.loadtxt(Path(path), comments="#").reshape(-1)
    if values.size != 16:
        raise DatasetError(f"'{path}' holds {values.size} numbers; a 7-Scenes pose file holds a 4x4 matrix")
    pose = values.reshape(4, 4)
    if not np.all(np.isfinite(pose)):
        raise DatasetError(f"'{path}' holds a non-finite pose (7-Scenes marks lost tracking that way)")
    return pose


def kitti_velodyne_to_camera(calib_dir: Path, camera_index: int = 2) -> np.ndarray:
    """4x4 T_camN_velo: velodyne points -> rectified camera N's own optical frame.

    T = [I | K^-1 p4] · R_rect_00 · [R | T]_velo_to_cam, with p4 the 4th column of P_rect_0N (KITTI devkit
    convention: P_rect_0N · R_rect_00 · Tr_velo_to_cam projects velodyne points into image N).
    """
    cam = parse_kitti_calibration(calib_dir / "calib_cam_to_cam.txt")
    velo = parse_kitti_calibration(calib_dir / "calib_velo_to_cam.txt")
    t_velo = np.eye(4)
    t_velo[:3, :3] = velo["R"].reshape(3, 3)
    t_velo[:3, 3] = velo["T"]
    rect = np.eye(4)
    rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
    p = cam[f"P_rect_0{camera_index}"].reshape(3, 4)
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(p[:, :3], p[:, 3])
    return offset @ rect @ t_velo


def _find_upwards(start: Path, name: str, levels: int = 3) -> Path | None:
    for d in [start, *list(start.parents)[:levels]]:
        if (d / name).is_file():
            return d / name
    return None


def seconds_text_to_ns(text: str) -> int:
    """'1341841278.8427' -> 1341841278842700000 exactly (no float rounding)."""
    whole, _, frac = text.strip().partition(".")
    sign = -1 if whole.startswith("-") else 1
    return int(whole) * 1_000_000_000 + sign * int((frac or "0").ljust(9, "0")[:9])


def _kitti_stamp_ns(text: str) -> int:
    """'2011-09-26 13:17:59.287203584' -> ns since the epoch (KITTI timestamps, read as UTC)."""
    date, frac = (text.strip().split(".") + ["0"])[:2]
    base = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)  # datetime.UTC is Python >= 3.11
    return int(base.timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


# ----------------------------------------------------------------------------------------------------------------
# layouts


class KittiRawSequence:
    """One camera of a KITTI raw drive folder (``..._sync``) with projected ground truth."""

    def __init__(self, drive_dir: str | Path, camera: str = "image_02", ground_truth: str = "auto") -> None:
        self.root = Path(drive_dir)
        self.camera_name = camera
        image_dir = self.root / camera / "data"
        self.images = sorted(image_dir.glob("*.png"))
        if not self.images:
            raise DatasetError(f"no images in '{image_dir}'; pass a KITTI raw drive folder (…_sync)")
        calib = _find_upwards(self.root, "calib_cam_to_cam.txt")
        if calib is None:
            raise DatasetError(f"no calib_cam_to_cam.txt in or above '{self.root}'; copy the drive's calibration")
        self.calib_dir = calib.parent
        first = cv2.imread(str(self.images[0]), cv2.IMREAD_UNCHANGED)
        self.camera_index = int(camera[-1])
        self.camera = kitti_camera(calib, self.camera_index, (first.shape[1], first.shape[0]))
        self.depth_dir, self.ground_truth = self._find_ground_truth(ground_truth)
        stamps = self.root / camera / "timestamps.txt"
        self._stamps = stamps.read_text().splitlines() if stamps.is_file() else []

    def _find_ground_truth(self, kind: str) -> tuple[Path | None, str]:
        candidates = {
            "groundtruth": self.root / "proj_depth" / "groundtruth" / self.camera_name,
            "velodyne": self.root / "proj_depth" / "velodyne" / self.camera_name,
        }
        order = ["groundtruth", "velodyne"] if kind == "auto" else [kind]
        for name in order:
            if name not in candidates:
                raise DatasetError(f"ground truth '{kind}' is unknown; use auto, groundtruth or velodyne")
            if candidates[name].is_dir():
                return candidates[name], name
        return None, "none"

    def __len__(self) -> int:
        return len(self.images)

    def _depth_for(self, stem: str) -> np.ndarray | None:
        if self.depth_dir is None:
            return None
        png, npz = self.depth_dir / f"{stem}.png", self.depth_dir / f"{stem}.npz"
        if png.is_file():
            return read_uint16_depth(png, KITTI_DEPTH_SCALE)
        if npz.is_file():
            return read_npz_depth(npz)
        return None

    def frame_numbers(self) -> list[int]:
        return [int(p.stem) if p.stem.isdigit() else i for i, p in enumerate(self.images)]

    def __iter__(self) -> Iterator[DatasetFrame]:
        for index, path in zip(self.frame_numbers(), self.images):
            stamp = _kitti_stamp_ns(self._stamps[index]) if index < len(self._stamps) else index * 100_000_000
            yield DatasetFrame(path.stem, stamp, read_rgb(path), self._depth_for(path.stem), self.camera, index)


class KittiFrames:
    """Flat KITTI frames: ``rgb/*.png``, ``depth/*.png`` (uint16 / 256) and ``calib_cam_to_cam.txt``."""

    def __init__(self, folder: str | Path, camera_index: int = 2) -> None:
        self.root = Path(folder)
        self.images = sorted((self.root / "rgb").glob("*.png"))
        if not self.images:
            raise DatasetError(f"no rgb/*.png in '{self.root}'")
        first = cv2.imread(str(self.images[0]), cv2.IMREAD_UNCHANGED)
        self.camera = kitti_camera(self.root / "calib_cam_to_cam.txt", camera_index, (first.shape[1], first.shape[0]))
        self.ground_truth = "groundtruth"

    def __len__(self) -> int:
        return len(self.images)

    def frame_numbers(self) -> list[int]:
        return [int(p.stem) if p.stem.isdigit() else i for i, p in enumerate(self.images)]

    def __iter__(self) -> Iterator[DatasetFrame]:
        for index, path in zip(self.frame_numbers(), self.images):
            depth_path = self.root / "depth" / path.name
            depth = read_uint16_depth(depth_path, KITTI_DEPTH_SCALE) if depth_path.is_file() else None
            yield DatasetFrame(path.stem, index * 100_000_000, read_rgb(path), depth, self.camera, index)


def tum_camera(intrinsics: str | tuple[float, float, float, float] = "freiburg3", width: int = 640,
               height: int = 480) -> PinholeCamera:
    if isinstance(intrinsics, str):
        if intrinsics not in TUM_INTRINSICS:
            raise DatasetError(f"TUM camera '{intrinsics}' is unknown; choose {', '.join(TUM_INTRINSICS)}")
        intrinsics = TUM_INTRINSICS[intrinsics]
    fx, fy, cx, cy = intrinsics
    return PinholeCamera.from_camera_info_fields(width, height, [fx, 0, cx, 0, fy, cy, 0, 0, 1])


def _read_tum_list(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        stamp, name = line.split()[:2]
        rows.append((stamp, name))
    return rows


class TumRgbdSequence:
    """TUM RGB-D sequence (benchmark layout with rgb.txt/depth.txt, or the rgb/ + depth/ keyframe layout)."""

    def __init__(self, folder: str | Path, intrinsics: str | tuple[float, float, float, float] | None = None) -> None:
        self.root = Path(folder)
        if intrinsics is None:
            name = self.root.name.lower()
            intrinsics = next((k for k in TUM_INTRINSICS if k in name or k.replace("reiburg", "r") in name),
                              "freiburg3")
        self.intrinsics = intrinsics
        self.ground_truth = "depth"
        self.pairs: list[tuple[int, str, Path, Path]] = []  # (stamp_ns, name, rgb, depth)
        self._numbers: list[int] = []  # keyframe index (keyframe layout) or position (benchmark layout)
        if (self.root / "rgb.txt").is_file() and (self.root / "depth.txt").is_file():
            rgb = _read_tum_list(self.root / "rgb.txt")
            depth = _read_tum_list(self.root / "depth.txt")
            for i, j in associate_by_stamp([float(s) for s, _ in rgb], [float(s) for s, _ in depth], 0.02):
                stamp, name = rgb[i]
                self.pairs.append((seconds_text_to_ns(stamp), Path(name).stem, self.root / name,
                                   self.root / depth[j][1]))
                self._numbers.append(len(self._numbers))
        else:
            images = sorted((self.root / "rgb").glob("*_rgb_raw.*"))
            if not images:
                raise DatasetError(
                    f"'{self.root}' is not a TUM RGB-D folder: no rgb.txt/depth.txt and no rgb/NNNN_rgb_raw.* files"
                )
            poses = self.root / "truth_cam_poses.txt"
            stamps = [line.split()[0] for line in poses.read_text().splitlines() if line.strip()] \
                if poses.is_file() else []
            for path in images:
                index = int(path.name.split("_")[0])
                depth_path = self.root / "depth" / f"{index:04d}_depth_raw.png"
                stamp = seconds_text_to_ns(stamps[index]) if index < len(stamps) else index * 1_000_000_000
                self.pairs.append((stamp, f"{index:04d}", path, depth_path))
                self._numbers.append(index)
        if not self.pairs:
            raise DatasetError(f"no RGB/depth pairs found in TUM folder '{self.root}'")
        first = read_rgb(self.pairs[0][2])
        self.camera = tum_camera(self.intrinsics, first.shape[1], first.shape[0])

    def __len__(self) -> int:
        return len(self.pairs)

    def frame_numbers(self) -> list[int]:
        return list(self._numbers)

    def __iter__(self) -> Iterator[DatasetFrame]:
        for number, (stamp, name, rgb_path, depth_path) in zip(self._numbers, self.pairs):
            depth = read_uint16_depth(depth_path, TUM_DEPTH_SCALE) if depth_path.is_file() else None
            yield DatasetFrame(name, stamp, read_rgb(rgb_path), depth, self.camera, number)


class SevenScenesSequence:
    """Microsoft 7-Scenes sequence folder: the frames that have depth, optionally within a frame-number range.

    Files ``frame-NNNNNN.color.(png|jpg)``, ``frame-NNNNNN.depth.png`` (uint16 mm, 0 = invalid; 65535 is also
    invalid in the original release), ``frame-NNNNNN.pose.txt`` (4x4 camera-to-world), either side by side (the
    original layout) or in ``rgb/``, ``depth/``, ``pose/``; intrinsics from ``camera-intrinsics.txt`` (else the
    nominal fx = fy = 585, cx = 320, cy = 240). The depth is in the depth camera's frame, not registered to the
    colour camera: expect a few pixels of misalignment at depth edges. Stamps: frame number / 30 Hz.
    """

    NOMINAL_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])

    def __init__(self, folder: str | Path, frames: range | None = None, with_depth_only: bool = True) -> None:
        self.root = Path(folder)
        colour = {_seven_scenes_number(p): p for p in self._files("rgb", "color.*")}
        if not colour:
            raise DatasetError(f"no frame-NNNNNN.color.* images in '{self.root}' or its rgb/; not a 7-Scenes folder")
        depth = {_seven_scenes_number(p): p for p in self._files("depth", "depth.png")}
        numbers = sorted(n for n in colour if (n in depth or not with_depth_only) and (frames is None or n in frames))
        if not numbers:
            what = "with depth " if with_depth_only else ""
            raise DatasetError(f"no 7-Scenes frames {what}in '{self.root}'"
                               + (f" within frames {frames.start}:{frames.stop}:{frames.step}" if frames else ""))
        self.colour = {n: colour[n] for n in numbers}
        self.depth = {n: depth[n] for n in numbers if n in depth}
        self.ground_truth = "depth"
        intrinsics = self.root / "camera-intrinsics.txt"
        k = seven_scenes_intrinsics(intrinsics) if intrinsics.is_file() else self.NOMINAL_K
        first = read_rgb(self.colour[numbers[0]])
        self.camera = PinholeCamera.from_camera_info_fields(first.shape[1], first.shape[0], k.reshape(-1))

    def _files(self, folder: str, suffix: str) -> list[Path]:
        sub = self.root / folder
        return sorted((sub if sub.is_dir() else self.root).glob(f"frame-*.{suffix}"))

    def pose_path(self, number: int) -> Path:
        name = f"frame-{number:06d}.pose.txt"
        sub = self.root / "pose" / name
        return sub if sub.is_file() else self.root / name

    def pose(self, number: int) -> np.ndarray:
        """4x4 camera-to-world pose of a frame (metres)."""
        return read_seven_scenes_pose(self.pose_path(number))

    def frame_numbers(self) -> list[int]:
        return list(self.colour)

    def __len__(self) -> int:
        return len(self.colour)

    def __iter__(self) -> Iterator[DatasetFrame]:
        for number, path in self.colour.items():
            depth = self.depth.get(number)
            gt = read_uint16_depth(depth, SEVEN_SCENES_DEPTH_SCALE) if depth is not None else None
            if gt is not None:
                gt[gt >= 65.535] = np.nan  # 65535 marks invalid depth in the original 7-Scenes release
            stamp = round(number * 1e9 / SEVEN_SCENES_RATE_HZ)
            yield DatasetFrame(f"frame-{number:06d}", stamp, read_rgb(path), gt, self.camera, number)


def _seven_scenes_number(path: Path) -> int:
    return int(path.name.split(".")[0].removeprefix("frame-"))


class KittiOdometryFolder:
    """KITTI odometry sequence folder (no depth: for bags and training, not for ``depth-eval``).

    Images ``image_0/`` (or ``image_l/``, or ``image_2/``) ``NNNNNN.png``, ``calib.txt`` (any layout
    ``kitti_odometry_intrinsics`` reads), optional ``poses*.txt`` (3x4 camera-to-world per line, the first camera
    pose being the world frame) and ``times.txt`` (seconds from the sequence start; 10 Hz assumed without it).
    """

    IMAGE_FOLDERS = ("image_0", "image_l", "image_2")

    def __init__(self, folder: str | Path, frames: range | None = None) -> None:
        self.root = Path(folder)
        image_dir = next((self.root / d for d in self.IMAGE_FOLDERS if (self.root / d).is_dir()), None)
        if image_dir is None:
            raise DatasetError(f"'{self.root}' has none of {', '.join(self.IMAGE_FOLDERS)}; not a KITTI odometry "
                               "sequence folder")
        images = {int(p.stem): p for p in sorted(image_dir.glob("*.png")) if p.stem.isdigit()}
        self.numbers = [n for n in sorted(images) if frames is None or n in frames]
        if not self.numbers:
            raise DatasetError(f"no NNNNNN.png images in '{image_dir}'"
                               + (f" within frames {frames.start}:{frames.stop}:{frames.step}" if frames else ""))
        self.images = {n: images[n] for n in self.numbers}
        k = kitti_odometry_intrinsics(self.root / "calib.txt")
        first = cv2.imread(str(self.images[self.numbers[0]]), cv2.IMREAD_UNCHANGED)
        self.grey = first.ndim == 2
        self.camera = PinholeCamera.from_camera_info_fields(first.shape[1], first.shape[0], k.reshape(-1))
        pose_files = sorted(self.root.glob("poses*.txt"))
        self.poses = read_kitti_odometry_poses(pose_files[0]) if pose_files else None
        if self.poses is not None and len(self.poses) <= self.numbers[-1]:
            raise DatasetError(f"'{pose_files[0]}' has {len(self.poses)} poses but the images go up to frame "
                               f"{self.numbers[-1]}")
        times = self.root / "times.txt"
        self.seconds = np.loadtxt(times, ndmin=1) if times.is_file() else None

    def __len__(self) -> int:
        return len(self.numbers)

    def stamp_ns(self, number: int) -> int:
        if self.seconds is not None and number < len(self.seconds):
            return round(float(self.seconds[number]) * 1e9)
        return number * 100_000_000

    def read_image(self, number: int) -> np.ndarray:
        """HxW uint8 for the grey cameras, HxWx3 RGB for the colour ones."""
        if self.grey:
            image = cv2.imread(str(self.images[number]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DatasetError(f"cannot read image '{self.images[number]}'")
            return image
        return read_rgb(self.images[number])


def open_dataset(folder: str | Path, **kwargs
                 ) -> KittiRawSequence | KittiFrames | TumRgbdSequence | SevenScenesSequence:
    """Detect the layout of a folder and open it; raise DatasetError describing the layouts understood."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"'{root}' is not a folder")
    if (root / "image_02" / "data").is_dir() or (root / "image_03" / "data").is_dir():
        return KittiRawSequence(root, **kwargs)
    drives = sorted(root.glob("**/*_sync"))
    if drives and (drives[0] / "image_02" / "data").is_dir():
        return KittiRawSequence(drives[0], **kwargs)
    if (root / "calib_cam_to_cam.txt").is_file() and (root / "rgb").is_dir():
        return KittiFrames(root, **kwargs)
    if (root / "rgb.txt").is_file() or any((root / "rgb").glob("*_rgb_raw.*")):
        return TumRgbdSequence(root, **kwargs)
    if any((root / "rgb").glob("frame-*.color.*")) or any(root.glob("frame-*.color.*")):
        return SevenScenesSequence(root, **kwargs)
    images = [p for p in root.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    if images:
        raise DatasetError(
            f"'{root}' holds {len(images)} images but no ground-truth depth in a known layout, so it cannot be "
            "evaluated. Add depth (KITTI: rgb/ + depth/ uint16/256 + calib_cam_to_cam.txt; TUM: rgb.txt + depth.txt) "
            "or record a bag with a depth or lidar topic. KITTI odometry folders (image_0/ + calib.txt) have no depth: "
            "evaluate them photometrically (training/evaluate_photometric.py)"
        )
    raise DatasetError(
        f"'{root}' is not a known dataset layout. Understood: KITTI raw drive (image_02/data + calib above), "
        "KITTI frames (rgb/, depth/, calib_cam_to_cam.txt), TUM RGB-D (rgb.txt + depth.txt, or rgb/NNNN_rgb_raw.*), "
        "7-Scenes (frame-NNNNNN.color.*/.depth.png/.pose.txt, flat or in rgb/ depth/ pose/); "
        "or pass a rosbag"
    )

