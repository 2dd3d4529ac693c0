"""atomic_files: the one atomic writer, and the sweep of a killed writer's temporaries (never a live one's)."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from depth_estimation_training.checkpointing import (
    load_training_state,
    restore_rng_state,
    save_training_state,
    truncate_loss_log,
)

from depth_estimation_ros.data import atomic_files
from depth_estimation_ros.data.atomic_files import (
    UNVERIFIABLE_STALE_AFTER_S,
    sweep_stale_temporaries,
    sweep_stale_temporaries_in,
    temporary_file_for,
    write_atomically,
)
from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

_MAKE_TEMPORARY = ("import sys, time; from depth_estimation_ros.data.atomic_files import temporary_file_for; "
                   "p = temporary_file_for(sys.argv[1]); p.write_bytes(b'half a checkpoint'); print(p, flush=True); "
                   "time.sleep(float(sys.argv[2]))")


def _writer(target, seconds: float) -> tuple[subprocess.Popen, str]:
    """Another process that creates a temporary of target and then sleeps (a writer mid-write)."""
    proc = subprocess.Popen([sys.executable, "-c", _MAKE_TEMPORARY, str(target), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_sweep_removes_a_killed_writers_temporary_and_keeps_a_live_one(tmp_path):
    target = tmp_path / "checkpoints" / "last.pt"
    live, live_tmp = _writer(target, 60)
    killed, killed_tmp = _writer(target, 60)  # its own start swept nothing: the first writer is alive
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    try:
        other = tmp_path / "checkpoints" / ".other.pt.x-1.abcdefgh.tmp"  # another target's: not this sweep's business
        other.write_bytes(b"x")
        assert os.path.exists(killed_tmp) and os.path.exists(live_tmp)
        assert sweep_stale_temporaries([target]) == [target.parent / os.path.basename(killed_tmp)]
        assert not os.path.exists(killed_tmp)
        assert os.path.exists(live_tmp) and other.exists()
        assert sweep_stale_temporaries_in(target.parent) == []  # "x-1": no such host here, and fresh
        assert os.path.exists(live_tmp)
    finally:
        live.kill()
        live.wait()
    assert sweep_stale_temporaries_in(target.parent) == [target.parent / os.path.basename(live_tmp)]


def test_temporaries_without_a_pid_or_of_another_host_are_swept_only_when_old(tmp_path):
    target = tmp_path / "model.onnx"
    legacy = tmp_path / ".model.onnx.k3j_x9a2.tmp"  # mkstemp name of earlier versions
    foreign = tmp_path / ".model.onnx.otherhost-123.abcdefgh.tmp"  # another host (shared file system)
    for path in (legacy, foreign):
        path.write_bytes(b"x")
    assert sweep_stale_temporaries([target]) == []
    old = time.time() - UNVERIFIABLE_STALE_AFTER_S - 10
    for path in (legacy, foreign):
        os.utime(path, (old, old))
    assert sorted(sweep_stale_temporaries([target])) == sorted([legacy, foreign])


def test_write_atomically_sweeps_its_targets_dead_temporaries_and_leaves_none(tmp_path):
    target = tmp_path / "report.json"
    dead, dead_tmp = _writer(target, 60)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    write_atomically(target, lambda tmp: tmp.write_text("{}"))
    assert sorted(os.listdir(tmp_path)) == ["report.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~atomic_files._current_umask())
    with pytest.raises(RuntimeError):
        write_atomically(target, lambda tmp: (_ for _ in ()).throw(RuntimeError("killed")))
    assert sorted(os.listdir(tmp_path)) == ["report.json"] and target.read_text() == "{}"
    assert temporary_file_for(target).name.startswith(f".report.json.{atomic_files._HOST}-{os.getpid()}.")


@pytest.mark.parametrize("tool", ["depth-export", "depth-eval"])
def test_tools_sweep_on_start(tmp_path, tool, capsys):
    from depth_estimation_ros.evaluation.cli import main as eval_main
    from depth_estimation_ros.networks.export import main as export_main

    out_dir = tmp_path / "out"
    target = out_dir / ("model.onnx" if tool == "depth-export" else "metrics.json")
    dead, dead_tmp = _writer(target, 60)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    if tool == "depth-export":  # the export itself then fails on its arguments: the sweep came first
        code = export_main(["--network", "lacdepth", "--encoder", "efficientnet_lite0", "--height", "7", "--width",
                            "7", "--output", str(target)])
    else:
        code = eval_main([str(tmp_path / "missing_bag"), "--output-dir", str(out_dir)])
    assert code != 0
    assert not os.path.exists(dead_tmp)
    assert "left by killed runs" in capsys.readouterr().err


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_with_a_code_payload_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    crafted = tmp_path / "crafted.pt"
    torch.save({"config": {}, "state_dict": {}, "step": 1, "rng": payload}, crafted)
    with pytest.raises(ValueError, match="refused to read training checkpoint"):
        load_training_state(crafted)
    with pytest.raises(ValueError, match="refused to read depth checkpoint"):
        load_depth_checkpoint(crafted)
    assert not marker.exists()
    with open(crafted, "rb") as handle:  # the payload is real: plain unpickling would have run it
        assert b"system" in handle.read()


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # a cached second Gaussian in Python's state
    np.random.randn()  # and in numpy's
    path = save_training_state(tmp_path / "last.pt", {"step": 7})
    expected = _draws()
    _draws()
    state = load_training_state(path)
    restore_rng_state(state["rng"])
    assert _draws() == expected and state["step"] == 7


def test_a_checkpoint_of_the_previous_format_still_resumes(tmp_path):
    """Earlier versions pickled the numpy RNG state as an ndarray (and Python's as tuples): still read with
    weights_only=True (an ndarray is rebuilt without running the file's code)."""
    np.random.seed(5)
    random.seed(6)
    legacy = {"step": 3, "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                 "torch": torch.get_rng_state()}}
    torch.save(legacy, tmp_path / "old.pt")
    expected = _draws()
    restore_rng_state(load_training_state(tmp_path / "old.pt")["rng"])
    assert _draws() == expected


def test_truncate_loss_log_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    log = tmp_path / "losses.jsonl"
    lines = [f'{{"step": {s}, "total": {s / 10}}}\n' for s in range(1, 8)]
    log.write_text("".join(lines) + '{"step": 8, "tot')  # the kill cut the last line short
    assert truncate_loss_log(log, 5) == 3
    assert log.read_text() == "".join(lines[:5])
    assert truncate_loss_log(log, 5) == 0
    assert sorted(os.listdir(tmp_path)) == ["losses.jsonl"]
    with pytest.raises(pickle.UnpicklingError):  # sanity: the guard is what refuses, not a broken file
        torch.load(tmp_path / "losses.jsonl", weights_only=True)


_MAKE_SCRATCH = ("import time; from depth_estimation_ros.data.atomic_files import temporary_directory; "
                 "d = temporary_directory(); open(d.name + '/named.onnx', 'wb').write(b'x'); "
                 "print(d.name, flush=True); time.sleep(60)")


def test_scratch_folders_of_killed_runs_are_swept_from_the_system_temporary_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(atomic_files.tempfile, "tempdir", None)  # re-read TMPDIR here as in a fresh process
    procs = [subprocess.Popen([sys.executable, "-c", _MAKE_SCRATCH], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, TMPDIR=str(tmp_path))) for _ in range(2)]
    killed, live = [(p, p.stdout.readline().strip()) for p in procs]
    killed[0].send_signal(signal.SIGKILL)
    killed[0].wait()
    try:
        removed = atomic_files.sweep_on_start("test")
        assert [str(p) for p in removed] == [killed[1]]
        assert os.path.isdir(live[1])
    finally:
        live[0].kill()
        live[0].wait()
