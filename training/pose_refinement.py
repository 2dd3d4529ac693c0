"""Target->source poses for view synthesis: GasMono refinement of COLMAP poses, or a plain PoseNet.

GasMono (Zhao et al., ICCV 2023): the coarse COLMAP pose E_{t->s} = [R | t] is refined in two steps.
1. AlignNet(target, source) -> scale s (= exp(delta), starts at 1) and residual dt: t* = s t + dt
   ("optimise t only" pose T_t = [R | t*]).
2. A residual PoseNet sees the target and the source warped with T_t and predicts a small correction T_res;
   the "optimise R" pose is T_R = T_res T_t.
The photometric loss is taken with both poses (weight beta on T_R). In "posenet" mode (monodepth2 baseline) only a
PoseNet on (target, source) predicts the pose. In "fixed" mode the COLMAP pose (metric through the odometry scale) is
used as it is: no pose network, the cheapest recipe where COLMAP's poses are accurate.
"""

from __future__ import annotations

import torch
from depth_estimation_training.geometry import pose_from_axis_angle, warp_source_to_target
from torch import nn

from depth_estimation_ros.networks.factory import build_align_network, build_pose_network
from depth_estimation_ros.networks.pose import align_translation

POSE_MODES = ("colmap", "posenet", "fixed")
COLMAP_POSE_MODES = ("colmap", "fixed")  # the modes whose samples need COLMAP poses (poses.json)


class PoseRefinement(nn.Module):
    def __init__(self, mode: str = "colmap", encoder: str = "resnet18", pretrained: bool = False) -> None:
        super().__init__()
        if mode not in POSE_MODES:
            raise ValueError(f"pose_mode must be one of {POSE_MODES}, got '{mode}'")
        self.mode = mode
        self.pose_net = build_pose_network(encoder, pretrained=pretrained) if mode != "fixed" else None
        self.align_net = build_align_network(encoder, pretrained=pretrained) if mode == "colmap" else None

    def forward(
        self,
        target: torch.Tensor,
        source: torch.Tensor,
        colmap_pose: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        k: torch.Tensor | None = None,
        inv_k: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Poses (N,4,4) target->source: {"pose"} in posenet and fixed mode; {"pose_t", "pose_r", "scale"} in
        colmap mode.

        colmap mode needs colmap_pose (N,4,4) and, for the residual PoseNet's input warp, depth (N,1,H,W, detached
        here) with k / inv_k (N,3,3).
        """
        no_autocast = torch.autocast(device_type=target.device.type, enabled=False)  # pose algebra in float32
        if self.mode == "fixed":
            if colmap_pose is None:
                raise ValueError("fixed pose mode needs the COLMAP relative pose")
            return {"pose": colmap_pose.float()}
        if self.mode == "posenet":
            axis_angle, translation = self.pose_net(target, source)
            with no_autocast:
                return {"pose": pose_from_axis_angle(axis_angle[:, 0].float(), translation[:, 0].float())}
        if colmap_pose is None or depth is None:
            raise ValueError("colmap pose mode needs the COLMAP relative pose and the target depth")
        scale, delta_t = self.align_net(target, source)
        with no_autocast:
            pose_t = colmap_pose.float().clone()
            pose_t[:, :3, 3] = align_translation(colmap_pose[:, :3, 3].float(), scale.float(), delta_t.float())
        with torch.no_grad():
            coarse, _ = warp_source_to_target(source, depth.detach(), k, inv_k, pose_t.detach())
        axis_angle, translation = self.pose_net(target, coarse)
        with no_autocast:
            pose_r = pose_from_axis_angle(axis_angle[:, 0].float(), translation[:, 0].float()) @ pose_t
        return {"pose_t": pose_t, "pose_r": pose_r, "scale": scale}
