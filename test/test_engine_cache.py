"""Engine cache key, JSON sidecar and atomic writes (no TensorRT needed)."""

from __future__ import annotations

import json
import os

import pytest

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.engines import engine_cache
from depth_estimation_ros.engines.engine_cache import EngineCacheKey


def _key(**changes) -> EngineCacheKey:
    fields = {
        "onnx_sha256": "a" * 64,
        "tensorrt_version": "10.3.0.30",
        "gpu_name": "Orin (nvgpu)",
        "compute_capability": "8.7",
        "precision": "fp16",
        "input_shape": (1, 3, 192, 640),
    }
    fields.update(changes)
    return EngineCacheKey(**fields)


def test_key_round_trips_through_json():
    key = _key()
    assert EngineCacheKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


def test_store_then_lookup_hits_with_the_same_bytes(tmp_path):
    path = engine_cache.default_engine_path(tmp_path, "/models/lacdepth_lite0.onnx", _key())
    assert path.name == "lacdepth_lite0.fp16.192x640.engine"
    engine_cache.store_engine(path, _key(), b"serialized-engine", {"note": "test"})
    record = json.loads(engine_cache.sidecar_path(path).read_text())
    assert record["key"]["input_shape"] == [1, 3, 192, 640] and record["build"] == {"note": "test"}
    lookup = engine_cache.lookup_engine(path, _key())
    assert lookup.hit and lookup.engine_bytes == b"serialized-engine"


@pytest.mark.parametrize(
    "field, value",
    [
        ("onnx_sha256", "b" * 64),
        ("tensorrt_version", "11.4.0.106"),
        ("gpu_name", "NVIDIA H100 80GB HBM3"),
        ("compute_capability", "9.0"),
        ("precision", "int8"),
        ("input_shape", (1, 3, 320, 1024)),
    ],
)
def test_any_key_difference_is_a_miss_that_names_the_field(tmp_path, field, value):
    path = tmp_path / "m.engine"
    engine_cache.store_engine(path, _key(), b"old engine")
    lookup = engine_cache.lookup_engine(path, _key(**{field: value}))
    assert not lookup.hit and lookup.engine_bytes is None
    assert field in lookup.reason and repr(value if field != "input_shape" else list(value)) in lookup.reason


def test_missing_engine_missing_sidecar_and_corruption_are_misses(tmp_path):
    path = tmp_path / "m.engine"
    assert "no cached engine" in engine_cache.lookup_engine(path, _key()).reason
    engine_cache.store_engine(path, _key(), b"engine bytes")
    path.write_bytes(b"engine bytez")  # same length, different content
    assert "corrupted" in engine_cache.lookup_engine(path, _key()).reason
    engine_cache.sidecar_path(path).unlink()
    assert "no sidecar" in engine_cache.lookup_engine(path, _key()).reason
    engine_cache.sidecar_path(path).write_text("{not json")
    assert "unreadable" in engine_cache.lookup_engine(path, _key()).reason


def test_rebuild_after_mismatch_replaces_the_slot(tmp_path):
    path = tmp_path / "m.engine"
    engine_cache.store_engine(path, _key(), b"built by 10.3")
    newer = _key(tensorrt_version="10.13.0.35")
    assert not engine_cache.lookup_engine(path, newer).hit
    engine_cache.store_engine(path, newer, b"built by 10.13")
    assert engine_cache.lookup_engine(path, newer).engine_bytes == b"built by 10.13"
    assert not engine_cache.lookup_engine(path, _key()).hit


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "engine.bin"
    write_bytes_atomically(target, b"good old engine")

    def killed(*_args):
        raise KeyboardInterrupt("build killed")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomically(target, b"half")
    assert target.read_bytes() == b"good old engine"
    assert os.listdir(tmp_path) == ["engine.bin"]


def test_build_killed_between_engine_and_sidecar_is_never_loaded(tmp_path, monkeypatch):
    path = tmp_path / "m.engine"
    engine_cache.store_engine(path, _key(), b"engine A")

    def killed_after_the_engine(target, data):
        if str(target).endswith(engine_cache.SIDECAR_SUFFIX):
            raise KeyboardInterrupt("build killed before the sidecar")
        return write_bytes_atomically(target, data)

    monkeypatch.setattr(engine_cache, "write_bytes_atomically", killed_after_the_engine)
    with pytest.raises(KeyboardInterrupt):
        engine_cache.store_engine(path, _key(precision="int8"), b"engine B")
    monkeypatch.undo()
    # the old sidecar was removed before the new engine went in: neither key matches the orphan engine
    assert not engine_cache.lookup_engine(path, _key()).hit
    assert "no sidecar" in engine_cache.lookup_engine(path, _key(precision="int8")).reason


def test_file_sha256_matches_hashlib(tmp_path):
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "x.onnx").write_bytes(data)
    assert engine_cache.file_sha256(tmp_path / "x.onnx", chunk_size=1 << 16) == hashlib.sha256(data).hexdigest()
