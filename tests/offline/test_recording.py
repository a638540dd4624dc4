# SPDX-License-Identifier: GPL-2.0-only
"""The -w recording, offline: one clock and wire order, and a write error
that ends the recording cleanly (the namespace test fills a real tmpfs)."""

import errno
import os

from scapy.utils import PcapReader

import arp_icmp_vlan0
from arp_icmp_vlan0 import OutputError, OutputFile, Recorder


def frame(n):
    return bytes([n]) * 60


def records(path):
    return [(float(packet.time), bytes(packet)[0]) for packet in PcapReader(str(path))]


def test_a_request_read_late_is_written_before_the_reply_sent_after_it(tmp_path):
    path = tmp_path / "order.pcap"
    recorder = Recorder(OutputFile(str(path)))
    recorder.request(frame(1), 1.000)   # answered...
    recorder.reply(frame(2), 1.010)     # ...the reply left at 1.010,
    recorder.request(frame(3), 1.005)   # but this one had arrived at 1.005
    recorder.reply(frame(4), 1.020)
    recorder.settle()
    recorder.request(frame(5), 2.000)
    recorder.close()
    assert records(path) == [(1.0, 1), (1.005, 3), (1.01, 2), (1.02, 4), (2.0, 5)]
    assert recorder.written == 5 and recorder.not_recorded == 0


def test_stamps_never_go_backwards(tmp_path):
    path = tmp_path / "late.pcap"
    recorder = Recorder(OutputFile(str(path)))
    recorder.request(frame(1), 5.0)
    recorder.request(frame(2), 4.0)  # read after a later one: takes its stamp
    recorder.close()
    assert records(path) == [(5.0, 1), (5.0, 2)]


def test_an_empty_recording_is_a_valid_file(tmp_path):
    path = tmp_path / "empty.pcap"
    Recorder(OutputFile(str(path))).close()
    assert records(path) == [] and path.stat().st_size == 24


def test_a_write_error_cuts_the_file_back_to_whole_records(tmp_path, monkeypatch, capsys):
    path = tmp_path / "full.pcap"
    recorder = Recorder(OutputFile(str(path)))
    for n in range(3):
        recorder.request(frame(n), float(n))
    recorder.settle()  # three whole records on disk
    room = [100]  # then the disk takes 100 more bytes, and no more

    def write(fd, data):
        if not room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = min(room[0], len(data))
        room[0] -= done
        return real_write(fd, data[:done])
    real_write = os.write
    monkeypatch.setattr(arp_icmp_vlan0.os, "write", write)
    for n in range(3, 6):
        recorder.request(frame(n), float(n))
    recorder.reply(frame(6), 6.0)
    recorder.settle()       # 76 bytes a record: one more fits whole, then the error
    recorder.request(frame(7), 7.0)
    recorder.close()
    assert [n for _, n in records(path)] == [0, 1, 2, 3]
    assert path.stat().st_size == 24 + 4 * 76
    assert (recorder.written, recorder.not_recorded) == (4, 4)
    assert recorder.line().endswith(", 4 not recorded (No space left on device)")
    err = capsys.readouterr().err
    assert err == (f"arp_icmp_vlan0: {path}: No space left on device; recording stopped, "
                   "answering goes on\n")


# -- the files the tool writes, opened as root before the privilege drop

import pytest  # noqa: E402
import stat  # noqa: E402


def test_a_planted_symlink_is_not_followed_and_its_target_untouched(tmp_path):
    """-w and --json were opened O_CREAT|O_TRUNC following links: a user who
    owns the directory pointed run.json at a root-owned file, truncated."""
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    (tmp_path / "run.json").symlink_to(target)
    with pytest.raises(OutputError, match="a symbolic link, which the tool does not follow"):
        OutputFile(str(tmp_path / "run.json"))
    assert target.read_bytes() == b"keep me"
    (tmp_path / "dangling.pcap").symlink_to(tmp_path / "new-file")
    with pytest.raises(OutputError, match="symbolic link"):
        OutputFile(str(tmp_path / "dangling.pcap"))
    assert not (tmp_path / "new-file").exists()


def test_a_fifo_is_refused_at_once_rather_than_blocking(tmp_path):
    fifo = tmp_path / "x.pcap"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="a FIFO or socket, not a regular file"):
        OutputFile(str(fifo))  # no reader: it used to block here forever
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OutputError, match="not a regular file"):
            OutputFile(str(fifo))  # with a reader, it opens, and fstat refuses it
    finally:
        os.close(reader)


@pytest.mark.parametrize("make, reason", [
    (lambda p: os.mkdir(p), "a directory"),
    (lambda p: os.symlink("/dev/null", p), "symbolic link"),
])
def test_not_a_regular_file_is_refused(tmp_path, make, reason):
    path = tmp_path / "out"
    make(path)
    with pytest.raises(OutputError, match=reason):
        OutputFile(str(path))


def test_a_file_with_another_hard_link_is_refused(tmp_path):
    (tmp_path / "precious").write_bytes(b"keep me")
    os.link(tmp_path / "precious", tmp_path / "run.json")
    with pytest.raises(OutputError, match="other hard links"):
        OutputFile(str(tmp_path / "run.json"))
    assert (tmp_path / "precious").read_bytes() == b"keep me"


def test_created_0644_under_umask_000_and_never_looser(tmp_path):
    old = os.umask(0)
    try:
        made = OutputFile(str(tmp_path / "a.json"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
    made.close()
    os.umask(0o077)
    try:
        OutputFile(str(tmp_path / "b.json")).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "b.json").st_mode) == 0o600


def test_an_existing_file_is_emptied_only_at_start_and_a_new_one_removed_on_failure(tmp_path):
    old = tmp_path / "old.pcap"
    old.write_bytes(b"last run")
    opened = OutputFile(str(old))
    assert old.read_bytes() == b"last run"  # the checks are not all done yet
    opened.discard()  # a check failed: it stays as it was
    assert old.read_bytes() == b"last run"
    opened = OutputFile(str(old))
    opened.start()
    assert old.read_bytes() == b""
    opened.close()
    made = OutputFile(str(tmp_path / "new.pcap"))
    made.discard()
    assert not (tmp_path / "new.pcap").exists()
