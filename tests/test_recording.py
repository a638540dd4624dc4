# SPDX-License-Identifier: GPL-2.0-only
"""The -w recording, offline: one clock and wire order, and a write error
that ends the recording cleanly (the namespace test fills a real tmpfs)."""

import errno
import os

from scapy.utils import PcapReader

import arp_icmp_vlan0
from arp_icmp_vlan0 import Recorder


def frame(n):
    return bytes([n]) * 60


def records(path):
    return [(float(packet.time), bytes(packet)[0]) for packet in PcapReader(str(path))]


def test_a_request_read_late_is_written_before_the_reply_sent_after_it(tmp_path):
    path = tmp_path / "order.pcap"
    recorder = Recorder(str(path))
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
    recorder = Recorder(str(path))
    recorder.request(frame(1), 5.0)
    recorder.request(frame(2), 4.0)  # read after a later one: takes its stamp
    recorder.close()
    assert records(path) == [(5.0, 1), (5.0, 2)]


def test_an_empty_recording_is_a_valid_file(tmp_path):
    path = tmp_path / "empty.pcap"
    Recorder(str(path)).close()
    assert records(path) == [] and path.stat().st_size == 24


def test_a_write_error_cuts_the_file_back_to_whole_records(tmp_path, monkeypatch, capsys):
    path = tmp_path / "full.pcap"
    recorder = Recorder(str(path))
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
