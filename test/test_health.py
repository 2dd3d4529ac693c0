"""health: throttled logging per kind of problem with suppressed counts; the throughput warning."""

from __future__ import annotations

from depth_estimation_ros.stream.health import ERROR, WARN, HealthMonitor, message_template, throughput_problem


def test_a_thousand_bad_frames_of_varying_size_log_one_line_per_kind_and_period():
    health = HealthMonitor(throttle=5.0)
    logged = []
    for i in range(1000):  # 1000 frames in 10 s, every message different (sizes, byte counts)
        line = health.report("image", ERROR, f"image data is truncated: {i} bytes", now=i * 0.01)
        if line:
            logged.append(line)
    assert len(logged) == 2  # t = 0 and t = 5 s
    assert logged[0] == "image data is truncated: 0 bytes"
    assert logged[1] == "image data is truncated: 500 bytes (499 more like it in the last 5 s not logged)"
    assert health.total_suppressed == 998 and health.counts() == {"image": 1000}
    assert message_template("P has fx=1e-300 fy=-2.5 for '640x480' [nan, inf]; 64x48 rgb8") == \
        "P has # # for # #; # #"
    # another problem, of the same kind or another, is logged at once; diagnostics carry the latest message of
    # each kind
    assert health.report("image", ERROR, "image encoding 'xyz' is not supported", now=9.99)
    assert health.report("image", ERROR, "image encoding 'abc' is not supported", now=9.991) is None
    assert health.report("calibration", ERROR, "camera_info P holds NaN", now=9.995)
    level, message = health.status()
    assert level == ERROR
    assert message == "image: image encoding 'abc' is not supported; calibration: camera_info P holds NaN"


def test_a_warning_does_not_hide_an_error_of_the_same_kind():
    health = HealthMonitor(throttle=5.0)
    assert health.report("camera_info", WARN, "images wait", now=0.0)
    assert health.report("camera_info", ERROR, "no CameraInfo", now=1.0)
    assert health.report("camera_info", WARN, "images wait", now=2.0) is None


def test_throughput_warning_names_the_achievable_rate():
    message = throughput_problem(offered_hz=60.0, processed_hz=8.4, min_ratio=0.5, frame_seconds=0.119)
    assert "8.4 Hz of 60.0 Hz" in message and "86 % of frames dropped" in message
    assert "about 8.4 Hz is achievable" in message
    assert throughput_problem(60.0, 40.0, 0.5, 0.02) is None  # within the threshold
    assert throughput_problem(60.0, 8.4, 0.0, 0.119) is None  # check off
    assert throughput_problem(0.5, 0.0, 0.5, None) is None  # too little input to judge
