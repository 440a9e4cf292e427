"""Opening a rosbag2 bag (folder, ``.mcap`` or ``.db3``) as a stream of raw messages, and
:func:`bag_info`. Storage failures become :class:`~corr_core.errors.CorruptBagError`; damaged
files fall back to :mod:`corr_core.data.bag.salvage`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from rosbags.rosbag2 import Reader, ReaderError
from ruamel.yaml import YAML

from corr_core.data.bag.salvage import McapSalvage, Sqlite3Salvage, salvage_reader
from corr_core.errors import CorruptBagError

log = logging.getLogger("corr_core.data.bag")


def _storage_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    return [f for f in files if f.is_file()]


def _check_metadata(path: Path) -> list[Path]:
    """Validates a bag folder's metadata.yaml; returns the storage files it lists."""
    meta = path / "metadata.yaml"
    if not meta.is_file():
        found = [f.name for f in _storage_files(path)]
        raise CorruptBagError(
            f"{path}: metadata.yaml is missing, so this is not a complete rosbag2 folder "
            f"(storage files here: {found or 'none'}; pass one of them directly to read it, "
            "or rebuild the metadata with `ros2 bag reindex`)"
        )
    try:
        info = YAML(typ="safe").load(meta.read_text())["rosbag2_bagfile_information"]
        names = [PurePath(str(p)).name for p in info["relative_file_paths"]]
        str(info["storage_identifier"])
    except Exception as exc:  # any YAML or key/type error means the file is garbled
        raise CorruptBagError(f"{meta}: garbled rosbag2 metadata ({type(exc).__name__}: {exc})") from exc
    return [path / n for n in names]


class BagSource:
    """An open bag: its topics, and a stream of raw messages; storage failures become
    :class:`CorruptBagError`. Falls back to :class:`McapSalvage` for mcap files without index and
    to :class:`Sqlite3Salvage` for truncated sqlite3 files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CorruptBagError(f"bag not found: {self.path}")
        if self.path.is_dir():
            files = _check_metadata(self.path)
        elif self.path.suffix in (".mcap", ".db3"):
            files = [self.path]
        else:
            raise CorruptBagError(f"{self.path}: not a rosbag2 folder, .mcap or .db3 file")
        self.storage = "mcap" if all(f.suffix == ".mcap" for f in files) else "sqlite3"
        self._reader: Reader | None = None
        self._salvage: list[McapSalvage | Sqlite3Salvage] = []
        reader = Reader(self.path)
        try:
            reader.open()
        except Exception as exc:  # rosbags raises ReaderError, apsw and OS errors alike
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ReaderError) else str(exc)
            if not all(f.is_file() for f in files):
                missing = [f.name for f in files if not f.is_file()]
                raise CorruptBagError(
                    f"{self.path}: unreadable rosbag2 bag ({reason}; missing: {missing})"
                ) from exc
            self._salvage = [salvage_reader(f, reason) for f in files]
            self._scan_salvage()
            if self.damage and not any(self.counts.values()):
                raise CorruptBagError(f"{self.damage}; no message in it is readable") from exc
            log.warning("%s: %s; reading it sequentially up to the damage", self.path, reason)
        else:
            self._reader = reader
            self.topics = {c.topic: c.msgtype for c in reader.connections}
            self.counts: dict[str, int] = {}
            for c in reader.connections:
                self.counts[c.topic] = self.counts.get(c.topic, 0) + c.msgcount
            self.start_ns, self.end_ns = (
                (reader.start_time, reader.end_time) if reader.message_count else (0, 0)
            )
            self.damage: str | None = None

    @property
    def salvaged(self) -> bool:
        """True when the bag's index is damaged and it is read sequentially up to the damage."""
        return bool(self._salvage)

    def _scan_salvage(self) -> None:
        """First pass over a damaged bag: topics, types, and counts up to the damage."""
        self.topics, self.counts, self.damage = {}, {}, None
        self.start_ns, self.end_ns = 2**63 - 1, 0
        for part in self._salvage:
            try:
                for cid, t, _ in part.messages():
                    topic = part.channels[cid][0]
                    self.counts[topic] = self.counts.get(topic, 0) + 1
                    self.start_ns, self.end_ns = min(self.start_ns, t), max(self.end_ns, t + 1)
            except CorruptBagError as exc:
                self.damage = str(exc)
            finally:
                for topic, msgtype in part.channels.values():
                    self.topics.setdefault(topic, msgtype)
                    self.counts.setdefault(topic, 0)
            if self.damage:
                break
        if not self.counts or not any(self.counts.values()):
            self.start_ns = self.end_ns = 0

    def messages(self, topics: set[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """Yields ``(topic, msgtype, log_time_ns, cdr_bytes)`` for the given topics.

        Raises:
            CorruptBagError: where the storage turns out to be damaged, after all earlier messages.
        """
        if self._salvage:
            for part in self._salvage:
                for cid, t, data in part.messages():
                    topic, msgtype = part.channels.get(cid, ("", ""))
                    if topic in topics:
                        yield topic, msgtype, t, data
            return
        assert self._reader is not None
        conns = [c for c in self._reader.connections if c.topic in topics]
        if not conns:
            return
        it = self._reader.messages(connections=conns)
        count = 0
        while True:
            try:
                conn, t, data = next(it)
            except StopIteration:
                return
            except Exception as exc:  # storage-level failure in the middle of the bag
                raise CorruptBagError(
                    f"{self.path}: corrupt rosbag2 storage after {count} messages "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            count += 1
            yield conn.topic, conn.msgtype, t, data

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def bag_info(path: str | Path) -> dict[str, Any]:
    """Summarises a bag.

    Returns:
        ``{"path", "storage", "topics": {topic: {"type", "count"}}, "message_count",
        "start_ns", "end_ns", "duration_s", "damage"}``; ``damage`` is None for a sound bag and
        describes the damage for a truncated bag (counts then cover the readable part).

    Raises:
        CorruptBagError: if the path is missing or the bag cannot be opened at all.
    """
    src = BagSource(path)
    try:
        topics = {t: {"type": src.topics[t], "count": int(src.counts.get(t, 0))} for t in sorted(src.topics)}
        return {
            "path": str(src.path),
            "storage": src.storage,
            "topics": topics,
            "message_count": sum(v["count"] for v in topics.values()),
            "start_ns": int(src.start_ns),
            "end_ns": int(src.end_ns),
            "duration_s": max(0, int(src.end_ns) - int(src.start_ns)) / 1e9,
            "damage": src.damage,
        }
    finally:
        src.close()
