"""Unpacking a downloaded artifact without trusting it.

An artifact is a zip someone else's run uploaded. Before anything is written, every member is
checked: its name must stay inside the destination (no absolute path, `..`, backslash or drive),
it must be a plain file or folder (no symbolic link, device or pipe), unencrypted, named once,
and the archive must stay within a file count and an unpacked size. Only the wanted files are
written, each to a new file (never through an existing path), and the bytes actually unpacked
are counted too, so a header that understates a member's size cannot get past the limit.
"""

from __future__ import annotations

import importlib.util
import io
import os
import stat
import struct
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..text.clip import clip

CHUNK = 1 << 20


class UnsafeArchive(Exception):
    """The archive was refused; the message says why in one line."""


@dataclass(frozen=True)
class ZipLimits:
    """How much an archive may hold."""

    max_files: int = 1000
    max_unpacked_bytes: int = 2 * 1024**3
    #: the most a member may unpack to per packed byte, past `RATIO_FREE` bytes: results compress
    #: about 10:1 (a run of repeated replies under 100:1); a bomb's single line a thousand times more
    max_ratio: int = 250


#: a member this small unpacks to whatever it likes: the ratio only matters for large ones
RATIO_FREE = 1024**2


def _short(name: str) -> str:
    return repr(clip(name, 100))


def _check_name(name: str) -> str:
    """The member's path, if it stays inside the folder it is unpacked into."""
    path = PurePosixPath(name)
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])
    ):
        raise UnsafeArchive(f"member {_short(name)} would be written outside the folder it is unpacked into")
    return path.as_posix().rstrip("/")


def _check_kind(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchive(f"member {_short(info.filename)} is a symbolic link")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsafeArchive(f"member {_short(info.filename)} is not a plain file")
    if info.flag_bits & 0x1:
        raise UnsafeArchive(f"member {_short(info.filename)} is encrypted")


_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"


def declared_entries(archive: BinaryIO) -> int | None:
    """The entry count the end-of-archive record declares, read before zipfile parses (and holds)
    every entry of the central directory; None when there is no such record."""
    size = archive.seek(0, os.SEEK_END)
    start = max(0, size - 65_557)
    archive.seek(start)
    tail = archive.read()
    at = tail.rfind(_END)
    if at < 0 or len(tail) < at + 22:
        return None
    (total,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if total == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _END64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", tail, locator + 8)
        archive.seek(offset)
        record = archive.read(40)
        if record[:4] == _END64 and len(record) == 40:
            (total,) = struct.unpack_from("<Q", record, 32)
    return int(total)


#: the compression methods this Python's zipfile reads (bzip2 and lzma only when built with them)
COMPRESSIONS = frozenset(
    method
    for method, module in (
        (zipfile.ZIP_STORED, None),
        (zipfile.ZIP_DEFLATED, "zlib"),
        (zipfile.ZIP_BZIP2, "bz2"),
        (zipfile.ZIP_LZMA, "lzma"),
    )
    if module is None or importlib.util.find_spec(module) is not None
)


def check_archive(archive: zipfile.ZipFile, limits: ZipLimits) -> dict[str, zipfile.ZipInfo]:
    """Every member checked before anything is written; returns the files by their path."""
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise UnsafeArchive(f"it holds {len(members):,} entries, more than the {limits.max_files:,} allowed")
    files: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    declared = 0
    bomb = None
    for info in members:
        name = _check_name(info.filename)
        _check_kind(info)
        if info.compress_type not in COMPRESSIONS:  # zipfile would fail on it only while writing
            raise UnsafeArchive(f"member {_short(name)} uses a compression method zipfile cannot read")
        if name in seen:
            raise UnsafeArchive(f"member {_short(name)} appears twice")
        seen.add(name)
        declared += info.file_size
        if bomb is None and info.file_size > max(RATIO_FREE, info.compress_size * limits.max_ratio):
            bomb = (
                f"member {_short(name)} unpacks to {info.file_size:,} bytes from {info.compress_size:,}, "
                f"more than {limits.max_ratio}:1"
            )
        if not info.is_dir():
            files[name] = info
    if declared > limits.max_unpacked_bytes:
        raise UnsafeArchive(f"it unpacks to {declared:,} bytes, more than the {limits.max_unpacked_bytes:,} allowed")
    if bomb is not None:
        raise UnsafeArchive(bomb)
    return files


def _write(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, ratio: int) -> int:
    """Copy one member into a new file; returns the bytes written, refusing past `budget` or past
    `ratio` bytes per packed byte (headers can lie about both sizes)."""
    budget = min(budget, max(RATIO_FREE, info.compress_size * ratio))
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(descriptor, "wb") as out, archive.open(info) as source:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise UnsafeArchive("it unpacks to more bytes than its headers declare, past the allowed size")
            out.write(chunk)
    return written


def extract(
    source: bytes | Path, dest: Path, wanted: Collection[str] | None = None, limits: ZipLimits | None = None
) -> list[str]:
    """Unpack the checked archive (its bytes, or its file) into the empty folder `dest`: only the
    `wanted` paths (all files when None). Returns the paths written; raises `UnsafeArchive` on any
    doubt."""
    limits = limits or ZipLimits()
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
        entries = declared_entries(handle)
        if entries is not None and entries > limits.max_files:
            raise UnsafeArchive(f"it holds {entries:,} entries, more than the {limits.max_files:,} allowed")
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as archive:
                files = check_archive(archive, limits)
                budget = limits.max_unpacked_bytes
                written = []
                for name, info in files.items():
                    if wanted is not None and name not in wanted:
                        continue
                    budget -= _write(archive, info, dest.joinpath(*name.split("/")), budget, limits.max_ratio)
                    written.append(name)
                return written
        except zipfile.BadZipFile as exc:
            raise UnsafeArchive(f"it is not a readable zip file ({exc})") from None
        except RuntimeError as exc:  # e.g. a member zipfile finds encrypted only while reading
            raise UnsafeArchive(f"it cannot be unpacked ({exc})") from None
        except (FileExistsError, NotADirectoryError):
            raise UnsafeArchive("its members collide (a file where another needs a folder)") from None
