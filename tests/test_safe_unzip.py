"""Unpacking an artifact nobody vouches for: every member is checked before anything is written."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from simulator.github.safe_unzip import UnsafeArchive, ZipLimits, declared_entries, extract


def make_zip(members: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


#: where a zip's two headers of a member keep (its signature, compression method, uncompressed size,
#: name length, name): the local header before its data, the central directory entry at the end
HEADERS = ((b"PK\x03\x04", 8, 22, 26, 30), (b"PK\x01\x02", 10, 24, 28, 46))


def _forge(data: bytes, name: str, field: str, fmt: str, value: int) -> bytes:
    """The archive with one field of `name`'s local and central headers rewritten."""
    forged = bytearray(data)
    encoded = name.encode()
    for signature, method, size, name_length, name_at in HEADERS:
        offset = {"method": method, "size": size}[field]
        at = 0
        while (at := forged.find(signature, at)) >= 0:
            (length,) = struct.unpack_from("<H", forged, at + name_length)
            if forged[at + name_at : at + name_at + length] == encoded:
                struct.pack_into(fmt, forged, at + offset, value)
            at += 4
    return bytes(forged)


def forge_size(data: bytes, name: str, size: int) -> bytes:
    """The archive with `name`'s uncompressed size rewritten in its local and central headers: an
    archive that claims to unpack to `size` bytes (or lies that it unpacks to fewer)."""
    return _forge(data, name, "size", "<I", size)


RESULTS = {"summary.json": b'{"simulations": {}}', "conversations.jsonl": b"", "report.html": b"<html>"}


def test_only_the_wanted_files_are_written(tmp_path: Path) -> None:
    archive = tmp_path / "artifact.zip"
    archive.write_bytes(make_zip(RESULTS))
    dest = tmp_path / "dest"
    dest.mkdir()
    written = extract(archive, dest, wanted={"summary.json", "conversations.jsonl"})
    assert sorted(written) == ["conversations.jsonl", "summary.json"]
    assert sorted(p.name for p in dest.iterdir()) == ["conversations.jsonl", "summary.json"]
    assert (dest / "summary.json").read_bytes() == RESULTS["summary.json"]
    assert stat.S_IMODE((dest / "summary.json").stat().st_mode) & 0o022 == 0


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "..\\evil.txt", "C:evil.txt", "ok/../../../x"]
)
def test_a_member_escaping_the_folder_refuses_the_whole_archive(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="would be written outside the folder"):
        extract(make_zip({"summary.json": b"{}", name: b"pwned"}), dest)
    assert list(dest.iterdir()) == [] and not list(tmp_path.rglob("evil.txt"))


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    data = make_zip({"summary.json": b"{}"}, symlinks={"conversations.jsonl": "/etc/passwd"})
    with pytest.raises(UnsafeArchive, match="'conversations.jsonl' is a symbolic link"):
        extract(data, tmp_path, wanted={"summary.json"})
    assert list(tmp_path.iterdir()) == []


def test_an_existing_link_in_the_destination_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "summary.json")
    with pytest.raises(UnsafeArchive):
        extract(make_zip({"summary.json": b"pwned"}), dest)
    assert outside.read_text() == "keep"


def test_file_count_and_unpacked_size_limits(tmp_path: Path) -> None:
    many = make_zip({f"f{i}.txt": b"" for i in range(20)})
    assert declared_entries(io.BytesIO(many)) == 20
    with pytest.raises(UnsafeArchive, match="it holds 20 entries, more than the 10 allowed"):
        extract(many, tmp_path, limits=ZipLimits(max_files=10))
    big = make_zip({"conversations.jsonl": b"x" * 5000})
    with pytest.raises(UnsafeArchive, match="it unpacks to 5,000 bytes, more than the 4,096 allowed"):
        extract(big, tmp_path, limits=ZipLimits(max_unpacked_bytes=4096))
    claims = forge_size(make_zip({"conversations.jsonl": b"x" * 10}), "conversations.jsonl", 3 * 1024**3)
    with pytest.raises(UnsafeArchive, match=r"it unpacks to 3,221,225,472 bytes, more than the 2,147,483,648 allowed"):
        extract(claims, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_member_larger_than_its_header_says_is_refused(tmp_path: Path) -> None:
    lying = forge_size(make_zip({"summary.json": b"{" + b" " * 10_000 + b"}"}), "summary.json", 10)
    with pytest.raises(UnsafeArchive, match="not a readable zip file"):  # zipfile stops at 10 bytes: bad CRC
        extract(lying, tmp_path)


def test_encrypted_duplicate_and_damaged_archives(tmp_path: Path) -> None:
    encrypted = bytearray(make_zip({"summary.json": b"{}"}))
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = encrypted.find(signature)
        encrypted[at + flag_at] |= 0x1
    with pytest.raises(UnsafeArchive, match="'summary.json' is encrypted"):
        extract(bytes(encrypted), tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("summary.json", b"{}")
        archive.writestr("summary.json", b"{}")
    with pytest.raises(UnsafeArchive, match="'summary.json' appears twice"):
        extract(buffer.getvalue(), tmp_path)
    with pytest.raises(UnsafeArchive, match="not a readable zip file"):
        extract(b"<html>not found</html>", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_compression_method_zipfile_cannot_read_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Method 99 (WinZip AES) and the like: refused by the check, not half-way through unpacking."""
    archive = _forge(make_zip(RESULTS), "conversations.jsonl", "method", "<H", 99)
    with pytest.raises(UnsafeArchive, match="compression method zipfile cannot read"):
        extract(archive, tmp_path / "out")
    assert not list(tmp_path.rglob("*.jsonl")) and not list(tmp_path.rglob("*.json"))


def test_a_member_that_unpacks_far_beyond_its_packed_size_is_refused(tmp_path: Path) -> None:
    # one line of 300 MB packs to about 300 KB: a reader would hold it whole
    bomb = make_zip({"conversations.jsonl": b'{"conversation_id": "' + b"a" * (300 * 1024**2) + b'"}\n'})
    assert len(bomb) < 1024**2
    with pytest.raises(UnsafeArchive, match=r"member 'conversations.jsonl' unpacks to 314,572,824 bytes from .* 250:1"):
        extract(bomb, tmp_path)
    assert list(tmp_path.iterdir()) == []
    # its header lying about the size: the writing stops at the ratio all the same
    lying = forge_size(bomb, "conversations.jsonl", 1000)
    with pytest.raises(UnsafeArchive):
        extract(lying, tmp_path / "second")
    assert not (tmp_path / "second" / "conversations.jsonl").exists() or (
        (tmp_path / "second" / "conversations.jsonl").stat().st_size <= 250 * len(bomb)
    )
    # ordinary results (a long run of similar replies) are far from the ratio
    usual = b"".join(
        b'{"conversation_id": "c%d", "reply": "Your refund for order %d is on its way."}\n' % (i, i)
        for i in range(40_000)
    )
    extract(make_zip({"conversations.jsonl": usual}), tmp_path / "usual")
    assert (tmp_path / "usual" / "conversations.jsonl").read_bytes() == usual
