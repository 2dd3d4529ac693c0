"""TensorRT engine cache: key, JSON sidecar, atomic files.

A serialized TensorRT engine is only valid for the exact ONNX, TensorRT version, GPU (name and compute capability),
precision and input shape it was built for. Each cached engine ``<name>.engine`` has a sidecar ``<name>.engine.json``
recording that key and the engine file's sha256. A lookup compares every key field; any difference (or a missing
sidecar, or an engine whose bytes do not match the recorded sha256) is a miss with the reason spelled out, and the
caller rebuilds: a stale engine is never loaded silently.

Files are written to a temporary file in the same directory and moved into place with ``os.replace``; the engine
goes first and the sidecar last, so a build killed at any point leaves either the old valid pair, or an engine
without a matching sidecar (a miss), never a half-written engine that looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from depth_estimation_ros.data.atomic_files import write_bytes_atomically

SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class EngineCacheKey:
    """Everything a serialized TensorRT engine depends on."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" (Jetson Orin), "9.0" (H100), ...
    precision: str  # "fp32" | "fp16" | "int8"
    input_shape: tuple[int, ...]  # (N, 3, H, W)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> EngineCacheKey:
        return cls(
            onnx_sha256=str(data["onnx_sha256"]),
            tensorrt_version=str(data["tensorrt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=str(data["compute_capability"]),
            precision=str(data["precision"]),
            input_shape=tuple(int(v) for v in data["input_shape"]),
        )

    def differences(self, other: EngineCacheKey) -> list[str]:
        """Human-readable 'field: cached X, wanted Y' for every field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{name}: cached {theirs[name]!r}, wanted {mine[name]!r}"
                for name in mine if mine[name] != theirs[name]]


@dataclass(frozen=True)
class CacheLookup:
    """Result of looking an engine up: ``hit`` with the engine bytes, or a miss with the reason."""

    hit: bool
    reason: str
    engine_bytes: bytes | None = None


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def default_engine_path(cache_dir: str | os.PathLike, onnx_path: str | os.PathLike, key: EngineCacheKey) -> Path:
    """``<cache_dir>/<onnx stem>.<precision>.<H>x<W>.engine`` (one slot per model, precision and input size).

    The remaining key fields (ONNX hash, TensorRT version, GPU) are checked through the sidecar, so a changed ONNX or
    a TensorRT upgrade rebuilds into the same slot instead of piling up stale engines.
    """
    height, width = key.input_shape[-2], key.input_shape[-1]
    return Path(cache_dir) / f"{Path(onnx_path).stem}.{key.precision}.{height}x{width}.engine"


def lookup_engine(engine_path: str | os.PathLike, key: EngineCacheKey) -> CacheLookup:
    """Return the cached engine bytes if the sidecar's key equals ``key`` and the bytes are intact."""
    engine_path = Path(engine_path)
    sidecar = sidecar_path(engine_path)
    if not engine_path.is_file():
        return CacheLookup(False, f"no cached engine at {engine_path}")
    if not sidecar.is_file():
        return CacheLookup(False, f"engine {engine_path} has no sidecar {sidecar} (interrupted build?)")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        cached_key = EngineCacheKey.from_dict(record["key"])
        recorded_sha = str(record["engine_sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        return CacheLookup(False, f"sidecar {sidecar} is unreadable ({exc})")
    differences = key.differences(cached_key)
    if differences:
        return CacheLookup(False, f"cached engine {engine_path} was built for another setup: " + "; ".join(differences))
    data = engine_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != recorded_sha:
        return CacheLookup(False, f"engine {engine_path} does not match the sha256 in its sidecar (corrupted)")
    return CacheLookup(True, f"cached engine {engine_path} matches", data)


def store_engine(
    engine_path: str | os.PathLike, key: EngineCacheKey, engine_bytes: bytes, extra: dict | None = None
) -> Path:
    """Atomically write the engine, then its sidecar (the sidecar is the commit marker)."""
    engine_path = Path(engine_path)
    sidecar = sidecar_path(engine_path)
    if sidecar.exists():  # invalidate first: a crash between the two writes must not pair old sidecar + new engine
        sidecar.unlink()
    write_bytes_atomically(engine_path, engine_bytes)
    record = {
        "format": SIDECAR_FORMAT,
        "key": key.to_dict(),
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "engine_bytes": len(engine_bytes),
        **({"build": extra} if extra else {}),
    }
    write_bytes_atomically(sidecar, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return engine_path
