"""``depth-eval`` / ``ros2 run depth_estimation_ros evaluate``: evaluate a depth model on a rosbag or a folder.

Examples::

    depth-eval recording.bag --image-topic /camera/image_raw --lidar-topic /velodyne_points --preset kitti
    depth-eval tum_bag/ --depth-topic /camera/depth/image_raw --preset indoor --output-bag tum_eval_out
    depth-eval ../shared/data/kitti_drive0001_frames50_100 --model lacdepth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depth_estimation_ros.data.bag_reading import is_bag_path
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.pipeline.depth_frame_processor import ProcessorSettings

PRESETS = {
    # name: (min_depth, max_depth, crop) -- monodepth2's KITTI / NYU protocols
    "kitti": (1e-3, 80.0, "garg"),
    "outdoor": (1e-3, 80.0, "none"),
    "indoor": (1e-3, 10.0, "none"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="depth-eval",
        description="Replay a rosbag (ROS 1 .bag, ROS 2 sqlite3/MCAP) or a KITTI/TUM folder through the depth "
                    "engine and score every frame against depth-image or lidar ground truth.",
    )
    p.add_argument("input", help="rosbag (ROS 1 .bag, ROS 2 bag folder, or a .mcap / .db3 file) or dataset folder "
                                 "(KITTI raw, TUM RGB-D)")
    p.add_argument("--model", default="lacdepth",
                   help="bundled model name (lacdepth, lacdepth_indoor, gatdepth) or .onnx path")
    p.add_argument("--backend", default="auto", help="auto | tensorrt | torch | onnxruntime")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0 = its default)")
    g = p.add_argument_group("bag topics (inferred when the bag makes it unambiguous)")
    g.add_argument("--image-topic")
    g.add_argument("--camera-info-topic")
    g.add_argument("--depth-topic", help="ground-truth depth Image (16UC1 millimetres or 32FC1 metres)")
    g.add_argument("--lidar-topic", help="ground-truth lidar PointCloud2 (projected with /tf_static + /tf)")
    g.add_argument("--camera-frame", help="camera optical frame for the lidar transform (default: CameraInfo's)")
    g.add_argument("--sync-tolerance", type=float, default=0.05,
                   help="max |image stamp - ground-truth stamp| in seconds (default 0.05)")
    m = p.add_argument_group("protocol")
    m.add_argument("--preset", choices=["auto", *PRESETS], default="auto",
                   help="kitti: 1e-3-80 m + Garg crop; outdoor: 1e-3-80 m; indoor: 1e-3-10 m. auto: kitti for KITTI "
                        "folders, indoor for TUM folders, outdoor otherwise")
    m.add_argument("--min-depth", type=float, help="lower depth cap in metres (overrides the preset)")
    m.add_argument("--max-depth", type=float, help="upper depth cap in metres (overrides the preset)")
    m.add_argument("--crop", choices=["none", "garg", "eigen"], help="evaluation crop (overrides the preset)")
    m.add_argument("--max-frames", type=int)
    m.add_argument("--stride", type=int, default=1, help="evaluate every N-th image")
    m.add_argument("--frames", type=parse_frame_range, metavar="START:STOP[:STEP]",
                   help="frame numbers to evaluate, STOP excluded: a folder's own numbers (KITTI 0000000005 -> 5, "
                        "7-Scenes frame-000800 -> 800), a bag's image positions from 0")
    m.add_argument("--no-scene-blind", action="store_true",
                   help="skip the scene-blind references (mean prediction, leave-one-out ground-truth median) and "
                        "the structure gain; they keep every frame's ground truth in memory")
    o = p.add_argument_group("outputs")
    o.add_argument("--output-dir", help="report folder (default: depth_eval_<input name>)")
    o.add_argument("--output-bag", help="write a bag with the input plus predicted depth, camera_info and points")
    o.add_argument("--output-bag-format", choices=["sqlite3", "mcap"], help="for ROS 2 output bags (default mcap)")
    o.add_argument("--cloud-decimation", type=int, default=2, help="pixel step of the output bag's point clouds")
    o.add_argument("--output-min-depth", type=float, default=ProcessorSettings.min_depth,
                   help="the output bag's depth: closer is -Inf, as the node's min_depth (default: the node's)")
    o.add_argument("--output-max-depth", type=float, default=ProcessorSettings.max_depth,
                   help="the output bag's depth: at or beyond is +Inf, as the node's max_depth (default: the node's)")
    o.add_argument("--contact-sheet-frames", type=int, default=4)
    o.add_argument("--fit-uncertainty-scale", metavar="OUT.onnx",
                   help="LacDepth: fit the factor that puts 68.27 %% of the pixels within 1 depth_std on THESE frames "
                        "(training frames, never evaluation ones) and write the model with it in the metadata "
                        "(uncertainty_scale) to OUT.onnx (docs/evaluation.md)")
    o.add_argument("--no-progress", action="store_true")
    return p


def parse_frame_range(text: str) -> tuple[int, int | None, int]:
    """'800:1000' -> (800, 1000, 1); '0:200:5' -> (0, 200, 5); '100:' -> (100, None, 1)."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else None
        step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not START:STOP[:STEP] (e.g. 800:1000 or 0:200:5)") from None
    if start < 0 or step < 1 or (stop is not None and stop <= start):
        raise argparse.ArgumentTypeError(f"'{text}' selects no frame: need 0 <= START < STOP and STEP >= 1")
    return start, stop, step


def choose_preset(name: str, source: Path) -> tuple[float, float, str]:
    if name != "auto":
        return PRESETS[name]
    if not is_bag_path(source) and source.is_dir():
        from depth_estimation_ros.data.datasets import (
            DatasetError,
            KittiFrames,
            KittiRawSequence,
            open_dataset,
        )

        try:
            dataset = open_dataset(source)
        except DatasetError:
            return PRESETS["outdoor"]
        return PRESETS["kitti"] if isinstance(dataset, (KittiFrames, KittiRawSequence)) else PRESETS["indoor"]
    return PRESETS["outdoor"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from depth_estimation_ros.data.atomic_files import sweep_on_start
    from depth_estimation_ros.engines import create_engine
    from depth_estimation_ros.evaluation.frame_sources import BagTopics
    from depth_estimation_ros.evaluation.replay import EvaluationConfig, run_evaluation
    from depth_estimation_ros.evaluation.report import summary_table, write_report
    from depth_estimation_ros.resources.model_registry import resolve_model

    source = Path(args.input)
    out_dir = Path(args.output_dir or f"depth_eval_{source.resolve().name}")
    sweep_on_start("depth-eval", folders=[out_dir])
    try:
        if not source.exists():
            raise FileNotFoundError(f"input '{source}' does not exist")
        lo, hi, crop = choose_preset(args.preset, source)
        config = EvaluationConfig(
            min_depth=args.min_depth if args.min_depth is not None else lo,
            max_depth=args.max_depth if args.max_depth is not None else hi,
            crop=args.crop or crop, sync_tolerance_s=args.sync_tolerance, max_frames=args.max_frames,
            frame_stride=args.stride, contact_sheet_frames=args.contact_sheet_frames,
            cloud_decimation=args.cloud_decimation, frames=args.frames, scene_blind=not args.no_scene_blind,
            output_min_depth=args.output_min_depth, output_max_depth=args.output_max_depth,
        )
        topics = BagTopics(args.image_topic, args.camera_info_topic, args.depth_topic, args.lidar_topic,
                           args.camera_frame)
        engine = create_engine(resolve_model(args.model), args.backend, args.precision, args.device, args.threads)
        result = run_evaluation(source, engine, config, topics, args.output_bag, args.output_bag_format,
                                progress=not args.no_progress)
        result.config.update(model=args.model, preset=args.preset)
        paths = write_report(result, out_dir)
        if args.fit_uncertainty_scale:
            from depth_estimation_ros.evaluation.uncertainty_fit import (
                fitted_uncertainty_scale,
                stamp_uncertainty_scale,
            )

            scale, record = fitted_uncertainty_scale(result)
            stamped = stamp_uncertainty_scale(resolve_model(args.model), args.fit_uncertainty_scale, scale, record)
    except EXPECTED_ERRORS as exc:
        return report_error("depth-eval", exc)
    print(summary_table(result))
    if result.scene_blind is not None and result.scene_blind.warning:
        print(f"depth-eval: warning: {result.scene_blind.warning}", file=sys.stderr)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if args.output_bag:
        print(f"output bag: {args.output_bag}")
    if args.fit_uncertainty_scale:
        print(f"uncertainty_scale {record['scale']:.4g} (x{record['factor']:.4g}) fitted on {record['pixels']} pixels "
              f"of {len(record['frames'])} frames: within 1 sigma {record['within_1_sigma_before']:.4f} -> "
              f"{record['within_1_sigma_after']:.4f}, within 2 sigma {record['within_2_sigma_before']:.4f} -> "
              f"{record['within_2_sigma_after']:.4f}; wrote {stamped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
