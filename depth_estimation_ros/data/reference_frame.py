"""The bundled sample bag (TUM RGB-D fr3 cabinet, CC BY 4.0, depth_estimation_ros/sample/README.md; the demo plays
it) and the one real camera frame of it that the engine self-test runs, its first image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_estimation_ros.resources.package_share import PACKAGE_DIR

SAMPLE_BAG = PACKAGE_DIR / "sample" / "tum_fr3_cabinet"
SAMPLE_IMAGE_TOPIC = "/camera/color/image_raw/compressed"
REFERENCE_FRAME_INDEX = 0


@dataclass(frozen=True)
class ReferenceFrame:
    rgb: np.ndarray  # HxWx3 uint8
    source: str  # bag (relative to the package), topic and index
    rgb_sha256: str  # of the decoded pixels: a different JPEG decoder shows up here, not as a model fault


def rgb_sha256(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()).hexdigest()


def load_reference_frame(bag: Path = SAMPLE_BAG, topic: str = SAMPLE_IMAGE_TOPIC,
                         index: int = REFERENCE_FRAME_INDEX) -> ReferenceFrame:
    """Decode the index-th image of ``topic`` in ``bag``; FileNotFoundError when the sample is not installed."""
    from depth_estimation_ros.data.bag_reading import BagReader
    from depth_estimation_ros.messages.message_decoding import rgb_from_image_message

    if not bag.exists():
        raise FileNotFoundError(f"the sample bag '{bag}' holding the self-test frame is not installed; reinstall "
                                "the package (it ships depth_estimation_ros/sample/)")
    with BagReader(bag) as reader:
        for i, item in enumerate(reader.messages([topic])):
            if i == index:
                rgb = rgb_from_image_message(item.message)
                return ReferenceFrame(rgb, f"sample/{bag.name} {topic} #{index}", rgb_sha256(rgb))
    raise FileNotFoundError(f"the sample bag '{bag}' has fewer than {index + 1} messages on '{topic}'")
