"""camera_info_pairing: exact-stamp pairing across a bag loop / sim-time reset, header anomaly counts."""

from __future__ import annotations

from depth_estimation_ros.stream.camera_info_pairing import (
    EMPTY_FRAME_ID,
    STAMP_BACKWARDS,
    STAMP_REPEATED,
    ExactStampPairing,
    StampCheck,
)


def test_stamp_check_counts_empty_frame_id_repeats_and_backwards_stamps():
    check = StampCheck()
    assert check.check(100, "cam") == []
    assert check.check(200, "") == [EMPTY_FRAME_ID]
    assert check.check(200, "cam") == [STAMP_REPEATED]
    assert check.check(50, "cam") == [STAMP_BACKWARDS]
    assert check.check(60, "cam") == []  # the new timeline goes on normally
    assert check.counts == {EMPTY_FRAME_ID: 1, STAMP_REPEATED: 1, STAMP_BACKWARDS: 1}


def test_exact_pairing_keeps_pairing_after_a_bag_loop():
    """Loop 1 ends with image 7 unpaired (its CameraInfo was lost); loop 2 replays the same stamps. Every loop-2
    CameraInfo pairs with the loop-2 image of its stamp, never with the stale loop-1 one."""
    pairing: ExactStampPairing[str, str] = ExactStampPairing(queue_size=10)
    pairs = []
    for stamp in range(1, 8):
        pairs.append(pairing.add_image(stamp, f"loop1-image-{stamp}"))
        if stamp != 7:
            pairs.append(pairing.add_info(stamp, f"loop1-info-{stamp}"))
    assert [p.image for p in pairs if p] == [f"loop1-image-{s}" for s in range(1, 7)]
    # loop 2: the CameraInfo of each stamp now arrives before its image
    loop2 = []
    for stamp in range(1, 8):
        loop2.append(pairing.add_info(stamp, f"loop2-info-{stamp}"))
        loop2.append(pairing.add_image(stamp, f"loop2-image-{stamp}"))
    got = [(p.image, p.info) for p in loop2 if p]
    assert got == [(f"loop2-image-{s}", f"loop2-info-{s}") for s in range(1, 8)]


def test_exact_pairing_after_a_sim_time_reset_to_zero():
    pairing: ExactStampPairing[int, int] = ExactStampPairing(queue_size=10)
    for stamp in range(1_000, 1_010):
        pairing.add_image(stamp, stamp)  # CameraInfo of the old timeline never arrives
    served = [pairing.add_info(s, s) or pairing.add_image(s, s) for s in range(0, 20)]
    assert all(served) and [p.image for p in served] == list(range(20))
    assert pairing.waiting_images == 0
