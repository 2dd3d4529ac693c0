"""Pairing camera images with their CameraInfo, free of ROS types.

Two policies, as in image_pipeline:
- exact: an image and a CameraInfo pair when their header stamps are identical (message_filters'
  exact-time policy); unpaired items older than the queue are dropped and counted.
- latest: an image pairs with the most recent CameraInfo if its stamp is not older than max_age seconds
  relative to the image (cameras that publish CameraInfo at a lower rate, or latched).
Stamps are integer nanoseconds. StampCheck watches one stream's headers for an empty frame_id and for stamps that
repeat or go backwards (a bag loop, a sim-time reset); exact pairing forgets the queued items of a timeline the
stream has left, so a jump back never pairs a new message with an old one of the same stamp.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

ImageT = TypeVar("ImageT")
InfoT = TypeVar("InfoT")


@dataclass
class PairingResult(Generic[ImageT, InfoT]):
    image: ImageT
    info: InfoT


EMPTY_FRAME_ID, STAMP_REPEATED, STAMP_BACKWARDS = "empty_frame_id", "stamp_repeated", "stamp_backwards"


class StampCheck:
    """Header anomalies of one stream, counted by kind: an empty frame_id, a stamp equal to or older than the
    previous one."""

    def __init__(self) -> None:
        self._last: int | None = None
        self.counts = {EMPTY_FRAME_ID: 0, STAMP_REPEATED: 0, STAMP_BACKWARDS: 0}

    def check(self, stamp: int, frame_id: str) -> list[str]:
        """The anomalies of this header (kinds above), counted."""
        found = []
        if not frame_id:
            found.append(EMPTY_FRAME_ID)
        if self._last is not None and stamp == self._last:
            found.append(STAMP_REPEATED)
        elif self._last is not None and stamp < self._last:
            found.append(STAMP_BACKWARDS)
        self._last = stamp
        for kind in found:
            self.counts[kind] += 1
        return found


class ExactStampPairing(Generic[ImageT, InfoT]):
    def __init__(self, queue_size: int = 10) -> None:
        self._images: OrderedDict[int, ImageT] = OrderedDict()
        self._infos: OrderedDict[int, InfoT] = OrderedDict()
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._newest_image: int | None = None
        self._newest_info: int | None = None
        self.unpaired_images_dropped = 0

    def add_image(self, stamp: int, image: ImageT) -> PairingResult | None:
        with self._lock:
            if self._newest_image is not None and stamp < self._newest_image:
                # the image stream jumped back: every queued image belongs to the timeline it left
                self.unpaired_images_dropped += len(self._images)
                self._images.clear()
            self._newest_image = stamp
            info = self._infos.pop(stamp, None)
            if info is not None:
                self._drop_older(stamp)
                return PairingResult(image, info)
            self._images[stamp] = image
            while len(self._images) > self._queue_size:
                self._images.popitem(last=False)
                self.unpaired_images_dropped += 1
            return None

    def add_info(self, stamp: int, info: InfoT) -> PairingResult | None:
        with self._lock:
            if self._newest_info is not None and stamp < self._newest_info:
                self._infos.clear()  # the CameraInfo stream jumped back: queued ones are of the old timeline
            self._newest_info = stamp
            image = self._images.pop(stamp, None)
            if image is not None:
                self._drop_older(stamp)
                return PairingResult(image, info)
            self._infos[stamp] = info
            while len(self._infos) > self._queue_size:
                self._infos.popitem(last=False)
            return None

    def _drop_older(self, stamp: int) -> None:
        for key in [k for k in self._images if k < stamp]:
            del self._images[key]
            self.unpaired_images_dropped += 1
        for key in [k for k in self._infos if k < stamp]:
            del self._infos[key]

    @property
    def waiting_images(self) -> int:
        with self._lock:
            return len(self._images)


class LatestInfoPairing(Generic[ImageT, InfoT]):
    def __init__(self, max_age: float = 1.0) -> None:
        self.max_age_ns = int(max_age * 1e9)
        self._latest: tuple[int, InfoT] | None = None
        self._lock = threading.Lock()
        self.stale_images_dropped = 0

    def add_info(self, stamp: int, info: InfoT) -> None:
        with self._lock:
            self._latest = (stamp, info)

    def add_image(self, stamp: int, image: ImageT) -> PairingResult | None:
        with self._lock:
            latest = self._latest
        if latest is None:
            self.stale_images_dropped += 1
            return None
        info_stamp, info = latest
        if self.max_age_ns > 0 and stamp - info_stamp > self.max_age_ns:
            self.stale_images_dropped += 1
            return None
        return PairingResult(image, info)
