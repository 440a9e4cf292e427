"""Reading damaged rosbag2 storage files up to the damage.

A recording killed mid-way or a copy cut short leaves an mcap file without its summary/footer, or
a sqlite3 file shorter than its header says; ``rosbags`` refuses both. :class:`McapSalvage` and
:class:`Sqlite3Salvage` read such files from the start, message by message, and raise
:class:`~corr_core.errors.CorruptBagError` saying where at the first damaged record.
"""

from __future__ import annotations

import io
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2.storage_mcap import decompress as mcap_decompress

from corr_core.errors import CorruptBagError

_MCAP_MAGIC = b"\x89MCAP0\r\n"


class McapSalvage:
    """Reads an mcap file record by record from the start, without its (missing) index.

    Used when the summary/footer is gone (recording killed, copy cut short). Messages are
    produced in file order (sorted by log time within each chunk); at the first incomplete or
    inconsistent record :meth:`messages` raises :class:`CorruptBagError` saying where.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.size = path.stat().st_size
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)

    def _fail(self, offset: int, what: str) -> CorruptBagError:
        return CorruptBagError(
            f"{self.path}: truncated or corrupt mcap ({self.reason}); {what} at byte {offset} of {self.size}"
        )

    def _records(self, bio: Any, end: int, base: int) -> Iterator[tuple[int, bytes]]:
        while bio.tell() < end:
            start = bio.tell()
            head = bio.read(9)
            if len(head) < 9:
                raise self._fail(base + start, "incomplete record header")
            op, length = struct.unpack("<BQ", head)
            if start + 9 + length > end:
                raise self._fail(base + start, f"record 0x{op:02x} of {length} bytes runs past the end")
            yield op, bio.read(length)

    def _parse(self, op: int, rec: bytes) -> tuple[int, int, bytes] | None:
        """Registers schemas/channels; returns (channel_id, log_time, data) for a message."""
        if op == 0x03:
            (sid,) = struct.unpack_from("<H", rec, 0)
            (n,) = struct.unpack_from("<I", rec, 2)
            self.schemas[sid] = rec[6 : 6 + n].decode()
        elif op == 0x04:
            cid, sid = struct.unpack_from("<HH", rec, 0)
            (n,) = struct.unpack_from("<I", rec, 4)
            topic = rec[8 : 8 + n].decode()
            self.channels[cid] = (topic, self.schemas.get(sid, ""))
        elif op == 0x05:
            cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", rec, 0)
            return cid, log_time, rec[22:]
        return None

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Yields ``(channel_id, log_time_ns, cdr_bytes)`` and raises at the damage (if any)."""
        with self.path.open("rb") as bio:
            if bio.read(8) != _MCAP_MAGIC:
                raise self._fail(0, "no mcap magic")
            for op, rec in self._records(bio, self.size, 0):
                if op in (0x02, 0x0F):  # footer / data end: the data section is complete
                    return
                offset = bio.tell() - len(rec) - 9
                try:
                    if op == 0x06:
                        yield from self._chunk(rec, offset)
                    else:
                        out = self._parse(op, rec)
                        if out is not None:
                            yield out
                except (struct.error, UnicodeDecodeError, ReaderError) as exc:
                    raise self._fail(offset, f"bad record 0x{op:02x} ({exc})") from exc
        raise self._fail(self.size, "file ends without a data-end record")

    def _chunk(self, rec: bytes, offset: int) -> Iterator[tuple[int, int, bytes]]:
        _t0, _t1, size, crc = struct.unpack_from("<QQQI", rec, 0)
        (n,) = struct.unpack_from("<I", rec, 28)
        compression = rec[32 : 32 + n].decode()
        pos = 32 + n
        (clen,) = struct.unpack_from("<Q", rec, pos)
        raw = mcap_decompress(rec[pos + 8 : pos + 8 + clen], compression, size, crc)
        msgs = []
        inner = io.BytesIO(raw)
        for op, sub in self._records(inner, len(raw), offset):
            out = self._parse(op, sub)
            if out is not None:
                msgs.append(out)
        msgs.sort(key=lambda m: m[1])
        yield from msgs


class Sqlite3Salvage:
    """Reads a damaged rosbag2 sqlite3 file row by row, in recording order, up to the damage.

    A db3 file cut short (a copy interrupted, a disk filled) declares more pages than it has,
    so SQLite, and with it ``rosbags``, refuses to open it at all. Opened read-only and
    ``immutable`` (the file is never written) with ``writable_schema`` on, SQLite accepts the
    shorter file and reads every row whose pages survive; :meth:`messages` yields them in row
    order (the order they were recorded) and raises :class:`CorruptBagError` at the first row it
    cannot read. Same interface as :class:`McapSalvage`.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        self.channels: dict[int, tuple[str, str]] = {}  # topic id -> (topic, msgtype)
        try:
            con = self._connect()
            try:
                rows = con.execute("SELECT id, name, type FROM topics").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._fail(f"its topic table is unreadable ({exc})") from exc
        self.channels = {int(i): (str(name), str(msgtype)) for i, name, msgtype in rows}

    def _fail(self, what: str) -> CorruptBagError:
        return CorruptBagError(f"{self.path}: truncated or corrupt sqlite3 bag ({self.reason}); {what}")

    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        con = sqlite3.connect(uri, uri=True)
        con.execute("PRAGMA writable_schema=ON")  # tolerate a file shorter than its header says
        return con

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """Yields ``(topic_id, timestamp_ns, cdr_bytes)`` and raises at the damage (if any)."""
        con = self._connect()
        count, last_id = 0, None
        try:
            cursor = con.execute("SELECT id, topic_id, timestamp, data FROM messages ORDER BY id")
            while True:
                try:
                    row = cursor.fetchone()
                except sqlite3.Error as exc:
                    after = f"after row id {last_id}" if last_id is not None else "before the first row"
                    raise self._fail(f"{exc} {after} ({count} messages read)") from exc
                if row is None:
                    return
                last_id = int(row[0])
                count += 1
                yield int(row[1]), int(row[2]), bytes(row[3])
        finally:
            con.close()


def salvage_reader(path: Path, reason: str) -> McapSalvage | Sqlite3Salvage:
    return McapSalvage(path, reason) if path.suffix == ".mcap" else Sqlite3Salvage(path, reason)
