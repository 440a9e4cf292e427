"""rosbag2 round trips through real mcap and sqlite3 bags written with BagWriter (rosbags)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from corr_core.cli import main as corr_main
from corr_core.data.bag import (
    TYPESTORE,
    BagWriter,
    bag_info,
    decode_image,
    encode_image,
    make_header,
    read_synced,
    to_rgb,
)
from corr_core.data.davis import DavisDataset
from corr_core.errors import CorruptBagError, DataError, MissingCameraError, UnknownEncodingError

MS = 1_000_000
STORAGES = ["mcap", "sqlite3"]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _raw_messages(bag: Path, topic: str) -> list:
    with Reader(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [TYPESTORE.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages(conns)]


# (camera, encoding, array maker, expected decoded image, writer kwargs)
def _encoding_cases(rng: np.random.Generator) -> list[tuple[str, str, np.ndarray, np.ndarray, dict]]:
    h, w = 5, 7  # odd sizes catch stride mistakes
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    mono8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    mono16 = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    return [
        ("rgb8", "rgb8", rgb, rgb, {}),
        ("bgr8", "bgr8", rgb, rgb[..., ::-1], {}),
        ("rgba8", "rgba8", rgba, rgba[..., :3], {}),
        ("bgra8", "bgra8", rgba, rgba[..., 2::-1], {}),
        ("mono8", "mono8", mono8, mono8, {}),
        ("8UC1", "8UC1", mono8, mono8, {}),
        ("mono16", "mono16", mono16, mono16, {}),
        ("mono16be", "mono16", mono16, mono16, {"big_endian": True}),
        ("16UC1", "16UC1", mono16, mono16, {}),
        ("rgb8pad", "rgb8", rgb, rgb, {"row_padding": 3}),
        ("mono16bepad", "mono16", mono16, mono16, {"big_endian": True, "row_padding": 2}),
    ]


@pytest.mark.parametrize("storage", STORAGES)
def test_every_encoding_round_trips_exactly(tmp_path: Path, storage: str) -> None:
    cases = _encoding_cases(_rng(1))
    bag = tmp_path / "bag"
    stamps = [10 * MS, 110 * MS]
    with BagWriter(bag, storage=storage) as writer:
        for k, stamp in enumerate(stamps):
            for cam, enc, array, _, kwargs in cases:
                writer.add_image(f"/{cam}/image_raw", stamp, cam, array + k, enc, **kwargs)

    reader = read_synced(bag, {cam: f"/{cam}/image_raw" for cam, *_ in cases}, slop_s=0.001)
    sets = list(reader)
    assert [s.stamp_ns for s in sets] == stamps
    for k, frames in enumerate(sets):
        for cam, _, _, expected, _ in cases:
            got = frames.images[cam]
            assert got.dtype == expected.dtype, cam
            np.testing.assert_array_equal(got, expected + k, err_msg=cam)
            assert frames.headers[cam].frame_id == cam
            assert frames.headers[cam].stamp_ns == stamps[k]
    assert reader.stats.sets == 2 and not any(reader.stats.dropped.values())

    # The stored bytes really are big-endian and padded, not just consistently mis-handled.
    mono16 = cases[6][2]
    be = _raw_messages(bag, "/mono16bepad/image_raw")[0]
    assert be.is_bigendian == 1 and be.step == 7 * 2 + 2
    assert bytes(be.data[:2]) == int(mono16[0, 0]).to_bytes(2, "big")
    le = _raw_messages(bag, "/mono16/image_raw")[0]
    assert le.is_bigendian == 0 and bytes(le.data[:2]) == int(mono16[0, 0]).to_bytes(2, "little")


def test_compressed_images_round_trip(tmp_path: Path) -> None:
    rng = _rng(2)
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    exact = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.add_compressed_image("/jpg/image/compressed", 5 * MS, "jpg", smooth, "jpeg")
        writer.add_compressed_image("/png/image/compressed", 5 * MS, "png", exact, "png")
        writer.add_compressed_image("/depth/compressed", 5 * MS, "depth", depth, "png")
        writer.add_image("/raw/image_raw", 5 * MS, "raw", exact)
    topics = {
        "jpg": "/jpg/image/compressed",
        "png": "/png/image/compressed",
        "depth": "/depth/compressed",
        "raw": "/raw/image_raw",
    }
    (frames,) = list(read_synced(bag, topics))
    np.testing.assert_array_equal(frames.images["png"], exact)
    np.testing.assert_array_equal(frames.images["raw"], exact)
    np.testing.assert_array_equal(frames.images["depth"], depth)
    jpg = frames.images["jpg"]
    assert jpg.shape == smooth.shape and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - smooth).mean() < 3.0  # lossy but close, and RGB not BGR
    rgb = to_rgb(frames.images["depth"])
    assert rgb.shape == (20, 30, 3) and rgb.max() == 255 and (rgb[..., 0] == rgb[..., 2]).all()


def _write_two_cameras(bag: Path, a_stamps: list[int], b_stamps: list[int], storage: str = "mcap") -> None:
    """Camera images hold their own stamp (ms) in pixel (0, 0..3) so pairing can be checked."""
    events = [(t, "a") for t in a_stamps] + [(t, "b") for t in b_stamps]
    with BagWriter(bag, storage=storage) as writer:
        for t, cam in sorted(events):
            image = np.zeros((4, 6), dtype=np.uint16)
            image[0, 0] = t // MS
            writer.add_image(f"/{cam}/image_raw", t, f"{cam}_optical", image)


@pytest.mark.parametrize("storage", STORAGES)
def test_approximate_sync_pairs_jittered_stamps_and_drops_orphans(tmp_path: Path, storage: str) -> None:
    rng = _rng(3)
    jitter = lambda: int(rng.integers(-4, 5)) * MS  # noqa: E731
    a = [i * 100 * MS + 1000 * MS + jitter() for i in range(20)]
    b_index = [i for i in range(20) if i not in (5, 12)]
    b = [i * 100 * MS + 1000 * MS + jitter() for i in b_index]
    b += [i * 100 * MS + 1050 * MS for i in (3, 8)]  # 50 ms from any a stamp: no partner
    _write_two_cameras(tmp_path / "bag", a, b, storage)

    reader = read_synced(tmp_path / "bag", {"a": "/a/image_raw", "b": "/b/image_raw"}, slop_s=0.02)
    sets = list(reader)
    assert len(sets) == len(b_index) == 18
    for frames, i in zip(sets, b_index, strict=True):
        ta, tb = frames.headers["a"].stamp_ns, frames.headers["b"].stamp_ns
        assert ta == a[i]  # a's i-th frame is paired with b's i-th frame
        assert frames.images["a"][0, 0] == a[i] // MS and frames.images["b"][0, 0] == tb // MS
        assert abs(ta - tb) <= 20 * MS and frames.stamp_ns == max(ta, tb)
        assert frames.headers["b"].frame_id == "b_optical"
    assert reader.stats.dropped == {"a": 2, "b": 2}
    assert reader.stats.messages == {"a": 20, "b": 20}


def test_camera_that_stops_ends_the_sets_and_is_reported(tmp_path: Path) -> None:
    a = [i * 50 * MS for i in range(20)]
    b = [i * 50 * MS + 2 * MS for i in range(8)]
    _write_two_cameras(tmp_path / "bag", a, b)
    reader = read_synced(tmp_path / "bag", {"a": "/a/image_raw", "b": "/b/image_raw"}, queue_size=5)
    assert len(list(reader)) == 8
    assert reader.stats.sets == 8
    assert reader.stats.dropped == {"a": 12, "b": 0}
    assert reader.stats.last_stamp_ns["b"] == b[-1]


def test_camera_info_is_attached_to_sets(tmp_path: Path) -> None:
    K = np.array([[100.0, 0, 32], [0, 101.0, 24], [0, 0, 1]])
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.add_camera_info("/a/camera_info", 0, "a", 64, 48, K, D=[0.1, -0.2, 0, 0, 0.01])
        for i in range(3):
            writer.add_image("/a/image_raw", i * 10 * MS, "a", np.full((48, 64), i, np.uint8))
    sets = list(read_synced(bag, {"a": "/a/image_raw", "a/camera_info": "/a/camera_info"}))
    assert len(sets) == 3
    info = sets[-1].camera_info["a"]
    np.testing.assert_array_equal(info.K, K)
    np.testing.assert_allclose(info.D, [0.1, -0.2, 0, 0, 0.01])
    np.testing.assert_array_equal(info.P[:, :3], K)
    assert (info.width, info.height, info.frame_id) == (64, 48, "a")


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_yields_sets_before_damage_then_raises(tmp_path: Path, storage: str) -> None:
    rng = _rng(4)
    bag = tmp_path / "bag"
    n = 120  # 2 x 120 x 12 KiB: the mcap writer's 1 MiB chunks leave complete chunks in the first half
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)]
    with BagWriter(bag, storage=storage) as writer:
        for i, image in enumerate(images):
            writer.add_image("/a/image_raw", i * 33 * MS, "a", image)
            writer.add_image("/b/image_raw", i * 33 * MS + MS, "b", image[::-1].copy())
    topics = {"a": "/a/image_raw", "b": "/b/image_raw"}
    assert len(list(read_synced(bag, topics))) == n

    (storage_file,) = [f for f in bag.iterdir() if f.suffix in (".mcap", ".db3")]
    os.truncate(storage_file, storage_file.stat().st_size // 2)
    before = storage_file.read_bytes()
    got = []
    with pytest.raises(CorruptBagError, match=f"{storage_file}.*truncated or corrupt {storage}"):
        for frames in read_synced(bag, topics):
            got.append(frames)
    assert n // 4 < len(got) < n
    for i, frames in enumerate(got):
        np.testing.assert_array_equal(frames.images["a"], images[i])
        np.testing.assert_array_equal(frames.images["b"], images[i][::-1])
    info = bag_info(bag)
    assert info["damage"] and n // 4 < info["topics"]["/a/image_raw"]["count"] < n
    assert storage_file.read_bytes() == before  # salvaging never writes to the damaged file


@pytest.mark.parametrize("suffix", [".db3", ".mcap"])
def test_storage_file_that_is_not_a_bag_names_the_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"notabag{suffix}"
    path.write_bytes(b"not a bag at all " * 64)
    with pytest.raises(CorruptBagError, match=str(path)):
        list(read_synced(path, {"a": "/a/image_raw"}))


def test_unknown_encoding_names_encoding_and_topic(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    msg = TYPESTORE.types["sensor_msgs/msg/Image"](
        header=make_header(MS, "cam"),
        height=2,
        width=2,
        encoding="yuv422",
        is_bigendian=0,
        step=4,
        data=np.zeros(8, np.uint8),
    )
    with BagWriter(bag, storage="sqlite3") as writer:
        writer.add_message("/cam/image_raw", "sensor_msgs/msg/Image", MS, msg)
    with pytest.raises(UnknownEncodingError, match=r"yuv422.*/cam/image_raw"):
        list(read_synced(bag, {"cam": "/cam/image_raw"}))


def test_wrong_data_length_names_topic_and_sizes() -> None:
    msg = encode_image(np.zeros((3, 4, 3), np.uint8), 0, "x")
    msg.data = msg.data[:-1]
    with pytest.raises(DataError, match=r"/x/image.*35.*36"):
        decode_image(msg, "/x/image")


def test_missing_topic_lists_available_topics(tmp_path: Path) -> None:
    _write_two_cameras(tmp_path / "bag", [0], [0])
    with pytest.raises(MissingCameraError, match=r"/c/image_raw.*/a/image_raw.*/b/image_raw"):
        read_synced(tmp_path / "bag", {"a": "/a/image_raw", "c": "/c/image_raw"})


def test_bad_paths_and_metadata_raise_corrupt_bag(tmp_path: Path) -> None:
    with pytest.raises(CorruptBagError, match="nothing-here"):
        bag_info(tmp_path / "nothing-here")
    _write_two_cameras(tmp_path / "bag", [0, MS], [0, MS])
    meta = tmp_path / "bag" / "metadata.yaml"
    text = meta.read_text()
    meta.write_text("rosbag2_bagfile_information: [unterminated\n")
    with pytest.raises(CorruptBagError, match="metadata.yaml"):
        read_synced(tmp_path / "bag", {"a": "/a/image_raw"})
    meta.unlink()
    with pytest.raises(CorruptBagError, match="metadata.yaml is missing"):
        bag_info(tmp_path / "bag")
    meta.write_text(text)
    assert bag_info(tmp_path / "bag")["message_count"] == 4
    with pytest.raises(DataError, match="exists"):
        BagWriter(tmp_path / "bag")


def test_cli_info_and_export_to_davis_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / "rec"
    yy, xx = np.mgrid[0:24, 0:32]
    with BagWriter(bag) as writer:
        for i in range(4):
            writer.add_image(
                "/ego/image_raw",
                i * 100 * MS,
                "ego",
                np.stack([xx * 8, yy * 10, xx * 0 + i * 40], -1).astype(np.uint8),
            )
            writer.add_compressed_image(
                "/exo/image/compressed",
                i * 100 * MS + 3 * MS,
                "exo",
                np.full((16, 20, 3), 30 * i, np.uint8),
                "png",
            )
    assert corr_main(["bag", "info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "/ego/image_raw" in out and "sensor_msgs/msg/CompressedImage" in out and "0.303" in out

    dest = tmp_path / "export"
    args = [
        "bag",
        "export",
        str(bag),
        "--topics",
        "ego=/ego/image_raw,exo=/exo/image/compressed",
        "--out",
        str(dest),
    ]
    assert corr_main(args) == 0
    ego = DavisDataset(dest / "ego", resolution="24p")
    exo = DavisDataset(dest / "exo", resolution="16p")
    assert ego.sequences == exo.sequences == ["rec"]
    assert len(ego.frames("rec")) == len(exo.frames("rec")) == 4
    assert abs(int(exo.read_frame("rec", 3)[0, 0, 0]) - 90) <= 2
    assert abs(ego.read_frame("rec", 2)[..., 2].astype(int).mean() - 80) < 3
    assert corr_main(args) == 2  # refuses to overwrite without --overwrite
    assert corr_main([*args[:4], "ego=/nope", "--out", str(dest)]) == 2


def test_receive_time_sync_for_drivers_with_bad_header_stamps(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for i in range(3):
            t = i * 100 * MS
            # camera b's driver stamps with an unsynchronised clock, 1 s ahead
            for cam, received, header in (("a", t, t), ("b", t + 4 * MS, t + 1000 * MS)):
                msg = encode_image(np.full((2, 3), i, np.uint8), header, cam)
                writer.add_message(f"/{cam}/image_raw", "sensor_msgs/msg/Image", received, msg)
    topics = {"a": "/a/image_raw", "b": "/b/image_raw"}
    sets = list(read_synced(bag, topics, slop_s=0.01, use_receive_time=True))
    assert [int(s.images["b"][0, 0]) for s in sets] == [0, 1, 2]
    assert [s.stamp_ns for s in sets] == [i * 100 * MS + 4 * MS for i in range(3)]
    assert [s.headers["b"].stamp_ns for s in sets] == [i * 100 * MS + 1000 * MS for i in range(3)]
    by_header = read_synced(bag, topics, slop_s=0.01)
    assert list(by_header) == [] and by_header.stats.dropped == {"a": 3, "b": 3}


def test_export_help_shows_the_frame_pattern_once_formatted(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse does not %-format descriptions: a ``%%05d`` there was printed literally."""
    with pytest.raises(SystemExit) as exc:
        corr_main(["bag", "export", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "%%" not in out
    assert "<bag-name>/%05d.jpg" in out
