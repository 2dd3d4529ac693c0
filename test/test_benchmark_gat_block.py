"""The GAT block benchmark compares formulations that compute the same attention (the table's last column)."""

import torch

from depth_estimation_ros.benchmarks.gat_block import (
    FORMULATIONS,
    BenchmarkAttention,
    main,
    stage_shapes,
    with_formulation,
)


def test_every_formulation_gives_the_shipped_block_output():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 20)
    blocks = {f: BenchmarkAttention(16, 4, f).eval() for f in FORMULATIONS}
    for block in blocks.values():
        block.load_state_dict(blocks["one_by_one"].state_dict())
    with torch.no_grad():
        shipped = blocks["one_by_one"](x)
        for block in blocks.values():
            torch.testing.assert_close(block(x), shipped, rtol=1e-5, atol=1e-6)


def test_stage_shapes_follow_the_decoder():
    assert stage_shapes(640, 192) == [(1, 16, 192, 640), (2, 32, 96, 320), (4, 64, 48, 160), (8, 128, 24, 80),
                                      (16, 256, 12, 40)]


def test_table_has_a_row_per_stage(capsys):
    assert main(["--sizes", "64x32", "--iterations", "1", "--warmup", "0", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64x32 |")]
    assert len(rows) == 5
    assert all(float(row.rsplit("|", 2)[1]) < 1e-5 for row in rows)


def test_whole_network_variants_keep_the_weights_and_the_depth():
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False)
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.manual_seed(0)
        shipped = build_depth_network(cfg).eval().predict_depth(image)
        for formulation in FORMULATIONS:
            torch.manual_seed(0)
            model = with_formulation(build_depth_network(cfg).eval(), formulation)
            blocks = [m for m in model.modules() if isinstance(m, BenchmarkAttention)]
            assert len(blocks) == 5 and all(b.formulation == formulation for b in blocks)
            torch.testing.assert_close(model.predict_depth(image), shipped, rtol=1e-5, atol=1e-6)
