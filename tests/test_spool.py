"""drift.spool: the disk queue the node relay and the collector share."""

from __future__ import annotations

from drift.spool import Spool


def frames(a, b):
    return [[f"h{i}".encode(), b"{}", bytes([i % 256]) * 3] for i in range(a, b)]


def test_frames_come_out_in_order_and_leave_from_the_front_only(tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    assert (spool.depth, spool.last_id) == (0, 0)
    assert spool.append(frames(0, 5)) == 5
    assert spool.append(frames(5, 8)) == 8
    assert spool.depth == 8
    assert [i for i, _ in spool.head(3)] == [1, 2, 3]
    assert [p for _, p in spool.after(6, 10)] == frames(6, 8)
    spool.drop_through(3)
    assert spool.depth == 5 and [i for i, _ in spool.head(2)] == [4, 5]
    spool.drop_through(2)  # already gone: nothing happens
    assert spool.depth == 5
    spool.close()


def test_a_reopened_spool_holds_what_was_left(tmp_path):
    spool = Spool(tmp_path / "s.sqlite", durable=False)
    spool.append(frames(0, 10))
    spool.drop_through(4)
    spool.close()
    again = Spool(tmp_path / "s.sqlite", durable=False)
    assert (again.dropped_id, again.last_id, again.depth) == (4, 10, 6)
    assert [p for _, p in again.head(100)] == frames(4, 10)
    assert again.append(frames(10, 11)) == 11
    again.drop_through(11)
    assert again.depth == 0 and again.head(5) == []
    again.close()
