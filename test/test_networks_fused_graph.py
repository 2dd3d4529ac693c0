"""The fused formulations of issue 17 compute what the ones they replaced did, with the same weights.

Each network is built with a fixed seed and run on real frames with the formulation the code had before (commit
1b4a6c8, kept here verbatim and swapped in for the run) and with the current ones: the CPU's, which the ONNX export
traces, and the all-at-once one the networks use on CUDA (forced here on the CPU). Depth must agree within 1e-5
relative, LacDepth's depth_std within 1e-4, training outputs and gradients too; the state_dict keys and shapes must
be those recorded before the change (so the checkpoints being trained now load, strict).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from shared_data import DATA

from depth_estimation_ros.networks import graph_attention, metric_bins
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

KITTI_FRAMES = sorted((DATA / "kitti_drive0001_frames50_100" / "rgb").glob("*.png"))
TUM_FRAMES = sorted((DATA / "tum_fr3_cabinet_keyframes" / "rgb").glob("*.jpg"))
HEIGHT, WIDTH = 96, 320

# sha256 of "key:shape" lines of the lite0 networks' state_dict, recorded before the change (count, digest)
STATE_DICT_SIGNATURES = {
    "lacdepth": (388, "a400c0a36c3d50be81f3e863d6d9cf31e19f53b083bbda29bd1e32935c523cb0"),
    "gatdepth": (331, "4fad98d1415ceb9daee70d8290857ebe0b0eac0b1e4b9d829b4ccee2d8351237"),
    "baseline": (316, "19ea777d77b016cc1e69e9377efc49189e432ca76f2ccd02ef14901dbe55b8f5"),
}

pytestmark = pytest.mark.skipif(not KITTI_FRAMES or not TUM_FRAMES, reason=f"real images missing under {DATA}")


# -- the formulations before issue 17 (reference only) -----------------------------------------------------------
def old_attract_bin_centres(centres, attractors, alpha=metric_bins.ATTRACTOR_ALPHA):
    n_attractors = int(attractors.shape[1])
    delta = None
    for k in range(n_attractors):
        diff = attractors[:, k : k + 1] - centres
        term = diff * torch.exp(diff * diff * -alpha)
        delta = term if delta is None else delta + term
    return centres + delta * (1.0 / n_attractors) if n_attractors > 1 else centres + delta


def old_channel_max(x):
    while x.shape[1] > 1:
        half = int(x.shape[1]) // 2
        folded = torch.maximum(x[:, :half], x[:, half : 2 * half])
        x = torch.cat([folded, x[:, 2 * half :]], dim=1) if x.shape[1] % 2 else folded
    return x


def old_window_attention_forward(self, x):
    n, c, h, w = x.shape
    r = self.window // 2
    wh = self.project(x)
    centre = self.score_centre(wh)
    neighbour = self.score_neighbour(wh)
    window_max = F.max_pool2d(neighbour, self.window, stride=1, padding=r)
    logit_max = F.leaky_relu(centre + window_max, self.negative_slope)
    padded_scores = F.pad(neighbour, (r, r, r, r), value=graph_attention.PADDING_SCORE)
    padded = F.pad(wh, (r, r, r, r)).reshape(n, self.heads, c // self.heads, h + 2 * r, w + 2 * r)
    numerator, denominator = None, None
    neighbours = zip(graph_attention.shifted_neighbours(padded_scores, self.window),
                     graph_attention.shifted_neighbours(padded, self.window))
    for score_j, wh_j in neighbours:
        e = torch.exp(F.leaky_relu(centre + score_j, self.negative_slope) - logit_max)
        term = e.unsqueeze(2) * wh_j
        numerator = term if numerator is None else numerator + term
        denominator = e if denominator is None else denominator + e
    out = numerator / denominator.unsqueeze(2)
    return x + self.act(out.reshape(n, c, h, w))


def _all_at_once_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run here the window attention's CUDA formulation (fewer kernels; the attractors use one form everywhere)."""
    monkeypatch.setattr(graph_attention.WindowGraphAttention, "_weighted_sum_one_by_one",
                        graph_attention.WindowGraphAttention._weighted_sum_all_at_once)


def _old_formulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metric_bins, "attract_bin_centres", old_attract_bin_centres)
    monkeypatch.setattr(metric_bins, "channel_max", old_channel_max)
    monkeypatch.setattr(graph_attention.WindowGraphAttention, "forward", old_window_attention_forward)


# -----------------------------------------------------------------------------------------------------------------
def _real_batch() -> torch.Tensor:
    frames = []
    for path in (KITTI_FRAMES[0], KITTI_FRAMES[-1], TUM_FRAMES[0]):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        rgb = cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        frames.append(rgb.astype(np.float32).transpose(2, 0, 1) / 255.0)
    return torch.from_numpy(np.stack(frames))


def _network(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_depth_network(DepthNetworkConfig(name, "efficientnet_lite0", pretrained=False)).eval()


def _max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


def _predict(model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        if hasattr(model, "predict_depth_and_std"):
            return model.predict_depth_and_std(batch)
        return (model.predict_depth(batch),)


@pytest.mark.parametrize("network", ["lacdepth", "gatdepth", "baseline"])
def test_state_dict_is_the_one_the_checkpoints_have(network):
    state = _network(network).state_dict()
    signature = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert (len(state), hashlib.sha256(signature.encode()).hexdigest()) == STATE_DICT_SIGNATURES[network]


@pytest.mark.parametrize("formulation", ["cpu", "cuda"])
@pytest.mark.parametrize("network", ["lacdepth", "gatdepth"])
def test_exported_outputs_equal_the_old_formulation(network, formulation, monkeypatch):
    """Both formulations (the CPU's, which the ONNX export traces, and CUDA's all-at-once one, run here on the CPU)."""
    model, batch = _network(network), _real_batch()
    with monkeypatch.context() as patch:
        if formulation == "cuda":
            _all_at_once_on_the_cpu(patch)
        new = _predict(model, batch)
        with torch.no_grad():
            depth_only = model.predict_depth(batch)
    with monkeypatch.context() as patch:
        _old_formulation(patch)
        old = _predict(model, batch)
    assert _max_relative(new[0], old[0]) <= 1e-5
    if network == "lacdepth":
        assert torch.equal(new[0], depth_only)  # depth is the same graph with or without the std
        assert _max_relative(new[1], old[1]) <= 1e-4
    # the comparison can fail: a real change of the formulation is far outside the bound
    with monkeypatch.context() as patch:
        _old_formulation(patch)
        if network == "lacdepth":
            patch.setattr(metric_bins, "attract_bin_centres",
                          lambda c, a, alpha=1000.0: old_attract_bin_centres(c, a, alpha * 1.01))
        else:
            patch.setattr(graph_attention.WindowGraphAttention, "forward",
                          lambda self, x: old_window_attention_forward(self, x) * 1.01)
        assert _max_relative(new[0], _predict(model, batch)[0]) > 1e-5


@pytest.mark.parametrize("formulation", ["cpu", "cuda"])
def test_training_outputs_equal_the_old_formulation(formulation, monkeypatch):
    """forward (all scales, bins, relative) and its gradients are unchanged too: training is unaffected."""
    model, batch = _network("lacdepth"), _real_batch()[:2]
    if formulation == "cuda":
        _all_at_once_on_the_cpu(monkeypatch)
    model.train()

    def outputs_and_grads():
        model.zero_grad()
        out = model(batch)
        loss = sum(d.mean() for d in out["depth"]) + out["relative"].mean() + out["bin_centres"].mean()
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        return out, grads

    new, new_grads = outputs_and_grads()
    monkeypatch.undo()
    with monkeypatch.context() as patch:
        _old_formulation(patch)
        old, old_grads = outputs_and_grads()
    for a, b in zip(new["depth"], old["depth"]):
        assert _max_relative(a.detach(), b.detach()) <= 1e-5
    assert _max_relative(new["bin_centres"].detach(), old["bin_centres"].detach()) <= 1e-5
    assert torch.equal(new["relative"], old["relative"])
    assert new_grads.keys() == old_grads.keys()
    # all gradients as one vector (single tensors such as the encoder's bn3 biases have gradients of 1e-8, pure
    # cancellation, whose rounding differs in any reformulation)
    difference = torch.sqrt(sum(((g - old_grads[k]) ** 2).sum() for k, g in new_grads.items()))
    norm = torch.sqrt(sum((g**2).sum() for g in old_grads.values()))
    assert float(difference / norm) <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the all-at-once formulations run there)")
@pytest.mark.parametrize("network", ["lacdepth", "gatdepth"])
def test_cuda_outputs_equal_the_cpu_outputs(network):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model, batch = _network(network), _real_batch()
    cpu = _predict(model, batch)
    cuda = _predict(model.cuda(), batch.cuda())
    for a, b in zip(cuda, cpu):
        assert _max_relative(a.cpu(), b) <= 1e-4
