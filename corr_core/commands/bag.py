"""``corr bag info PATH``, ``corr bag export PATH --topics cam=topic,... --out DIR`` and ``corr bag
process IN OUT`` (corr_node's pipeline over a bag: :mod:`corr_core.commands.bag_process`).

``export`` turns the synchronised camera images of a rosbag2 bag into DAVIS-layout frame
folders, one data set per camera, so that bags can be used for training and evaluation::

    DIR/<cam>/JPEGImages/<H>p/<bag-name>/00000.jpg ...
    DIR/<bag-name>_stamps.csv    (set index, set stamp, each camera's header stamp, in ns)

Frame ``i`` of every camera comes from the same synchronised set.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, DataError

log = logging.getLogger("corr.bag")


def parse_topics(specs: list[str]) -> dict[str, str]:
    """Parses ``["cam0=/a/image_raw,cam1=/b/image_raw", ...]`` into ``{cam: topic}``.

    Raises:
        ConfigError: for an entry without ``=``, an empty name, or a camera given twice.
    """
    out: dict[str, str] = {}
    for spec in specs:
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            cam, sep, topic = item.partition("=")
            cam, topic = cam.strip(), topic.strip()
            if not sep or not cam or not topic:
                raise ConfigError(f"--topics entry {item!r} must look like camera=/topic/name")
            if cam in out:
                raise ConfigError(f"--topics names camera {cam!r} twice")
            out[cam] = topic
    if not out:
        raise ConfigError("--topics is empty; give camera=/topic pairs, e.g. cam0=/cam0/image_raw")
    return out


def format_info(info: dict[str, Any]) -> str:
    """Human-readable summary of :func:`corr_core.data.bag.bag_info`."""
    lines = [
        f"bag:      {info['path']} ({info['storage']})",
        f"duration: {info['duration_s']:.3f} s (start {info['start_ns']} ns, end {info['end_ns']} ns)",
        f"messages: {info['message_count']}",
    ]
    if info.get("damage"):
        lines.append(f"DAMAGED:  {info['damage']} (counts cover the readable part)")
    width = max((len(t) for t in info["topics"]), default=5)
    twidth = max((len(v["type"]) for v in info["topics"].values()), default=4)
    lines.append(f"{'topic':<{width}}  {'type':<{twidth}}  count")
    for topic, v in info["topics"].items():
        lines.append(f"{topic:<{width}}  {v['type']:<{twidth}}  {v['count']}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    from corr_core.data.bag import bag_info

    info = bag_info(args.path)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _bag_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


class _Exporter:
    """Writes the frames of each synchronised set; folders are created on the first set."""

    def __init__(self, out: Path, bag_name: str, resolution: str | None, quality: int, overwrite: bool):
        self.out, self.bag_name, self.resolution = out, bag_name, resolution
        self.quality, self.overwrite = int(quality), overwrite
        self.dirs: dict[str, Path] = {}
        self.count = 0
        self.stamp_rows: list[str] = []

    def _prepare(self, cam: str, height: int) -> Path:
        res = self.resolution or f"{height}p"
        folder = self.out / cam / "JPEGImages" / res / self.bag_name
        if folder.is_dir() and any(folder.iterdir()) and not self.overwrite:
            raise DataError(f"export folder {folder} is not empty; pass --overwrite to replace its frames")
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        return folder

    def add(self, frames: Any) -> None:
        import cv2

        from corr_core.data.image_codec import to_rgb

        for cam, image in frames.images.items():
            rgb = to_rgb(image)
            if cam not in self.dirs:
                self.dirs[cam] = self._prepare(cam, rgb.shape[0])
            path = self.dirs[cam] / f"{self.count:05d}.jpg"
            ok = cv2.imwrite(
                str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
            )
            if not ok:
                raise DataError(f"could not write frame {path}")
        stamps = ",".join(str(frames.headers[c].stamp_ns) for c in frames.images)
        self.stamp_rows.append(f"{self.count},{frames.stamp_ns},{stamps}")
        self.count += 1

    @property
    def stamps_path(self) -> Path:
        return self.out / f"{self.bag_name}_stamps.csv"

    def finish(self, cams: list[str]) -> Path:
        path = self.stamps_path
        if not self.count:
            return path
        header = "index,stamp_ns," + ",".join(f"{c}_stamp_ns" for c in cams)
        path.write_text("\n".join([header, *self.stamp_rows]) + "\n")
        return path


def export_bag(
    path: str | Path,
    topics: dict[str, str],
    out: str | Path,
    slop_s: float = 0.02,
    queue_size: int = 10,
    resolution: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Exports a bag's synchronised images as DAVIS-layout frame folders (see the module doc).

    If the bag is damaged part-way, every complete set before the damage is written (with its
    stamps file) before the :class:`~corr_core.errors.CorruptBagError` propagates.

    Returns:
        ``{"sets": n, "folders": {cam: folder}, "stamps": csv path, "dropped": {cam: n}}``.
    """
    from corr_core.data.bag import read_synced

    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"--quality must be in 1..100, got {quality}")
    reader = read_synced(path, topics, slop_s=slop_s, queue_size=queue_size)
    exporter = _Exporter(Path(out), _bag_name(Path(path)), resolution, quality, overwrite)
    if exporter.stamps_path.exists() and not overwrite:
        reader.close()
        raise DataError(f"{exporter.stamps_path} exists already; pass --overwrite to replace the export")
    cams = [c for c in topics if not c.endswith("/camera_info")]
    try:
        for frames in reader:
            exporter.add(frames)
    finally:
        stamps = exporter.finish(cams)
        log.info("wrote %d synchronised sets for %s to %s", exporter.count, cams, out)
    return {
        "sets": exporter.count,
        "folders": {c: str(p) for c, p in exporter.dirs.items()},
        "stamps": str(stamps),
        "dropped": dict(reader.stats.dropped),
    }


def run_export(args: argparse.Namespace) -> int:
    result = export_bag(
        args.path,
        parse_topics(args.topics),
        args.out,
        slop_s=args.slop,
        queue_size=args.queue_size,
        resolution=args.resolution,
        quality=args.quality,
        overwrite=args.overwrite,
    )
    print(f"exported {result['sets']} synchronised sets")
    for cam, folder in result["folders"].items():
        print(f"  {cam}: {folder} (dropped messages: {result['dropped'].get(cam, 0)})")
    print(f"  stamps: {result['stamps']}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr bag`` with its ``info``, ``export`` and ``process`` subcommands."""
    parser = subparsers.add_parser(
        "bag",
        help="inspect rosbag2 bags, export their camera images as DAVIS-layout data, run corr_node's pipeline "
        "over them",
        description="Inspect rosbag2 bags (mcap or sqlite3), export synchronised camera images, and process them "
        "with corr_node's pipeline.",
    )
    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", help="print the topics, types, message counts and duration of a bag")
    info.add_argument("path", help="bag folder (with metadata.yaml) or a single .mcap/.db3 file")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=run_info)

    export = sub.add_parser(
        "export",
        help="write synchronised camera images as DAVIS-layout frame folders",
        description="Writes OUT/<cam>/JPEGImages/<H>p/<bag-name>/%05d.jpg for each camera (frame i of "
        "every camera from the same synchronised set) and OUT/<bag-name>_stamps.csv.",
    )
    export.add_argument("path", help="bag folder (with metadata.yaml) or a single .mcap/.db3 file")
    export.add_argument(
        "--topics",
        action="append",
        required=True,
        metavar="CAM=TOPIC[,CAM=TOPIC]",
        help="camera name = image topic (sensor_msgs/Image or CompressedImage); repeatable",
    )
    export.add_argument("--out", required=True, help="output folder (one DAVIS-layout data set per camera)")
    export.add_argument(
        "--slop",
        type=float,
        default=0.02,
        help="largest stamp difference within a set, seconds (default 0.02)",
    )
    export.add_argument(
        "--queue-size",
        type=int,
        default=10,
        help="pending messages kept per camera while syncing (default 10)",
    )
    export.add_argument(
        "--resolution", default=None, help="name of the resolution folder (default: '<image height>p')"
    )
    export.add_argument("--quality", type=int, default=95, help="JPEG quality 1..100 (default 95)")
    export.add_argument("--overwrite", action="store_true", help="replace frames in existing output folders")
    export.set_defaults(func=run_export)

    from corr_core.commands import bag_process

    bag_process.add_parser(sub)
