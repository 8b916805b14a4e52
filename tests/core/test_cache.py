"""The SQLite rationale cache: round trip, several writer processes at once, corruption."""

import multiprocessing as mp

import numpy as np
import pytest

from grace_rag.cache import RationaleCache, text_key
from grace_rag.errors import CacheError


def _writer(path, worker, n):
    cache = RationaleCache(path)
    for i in range(n):
        cache.put_many("fp", "document", [(text_key(f"{worker}-{i}"), f"r{worker}-{i}", np.full(4, i, np.float32))])


def test_round_trip(tmp_path):
    cache = RationaleCache(tmp_path / "c.sqlite")
    cache.put_many("fp", "query", [("k1", "why", np.arange(3, dtype=np.float32))])
    got = cache.get_many("fp", "query", ["k1", "k2"])
    assert list(got) == ["k1"] and got["k1"][0] == "why" and got["k1"][1].tolist() == [0.0, 1.0, 2.0]
    assert cache.get_many("other-fp", "query", ["k1"]) == {}


def test_several_processes_write_at_once(tmp_path):
    path = tmp_path / "c.sqlite"
    RationaleCache(path)
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, w, 60)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert RationaleCache(path).count() == 180


def test_corrupted_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="delete it"):
        RationaleCache(path)


def test_pickles_as_its_path_and_reconnects(tmp_path):
    import pickle

    cache = RationaleCache(tmp_path / "c.sqlite")
    cache.put_many("fp", "query", [("k1", "why", np.ones(2, np.float32))])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.path == cache.path and copy.get_many("fp", "query", ["k1"])["k1"][0] == "why"
    cache.close()
    assert copy.count() == 1


def _count_in_child(cache, queue):
    queue.put(cache.count())


def test_a_forked_child_opens_its_own_connection(tmp_path):
    cache = RationaleCache(tmp_path / "c.sqlite")
    cache.put_many("fp", "query", [("k1", "why", np.ones(2, np.float32))])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_count_in_child, args=(cache, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) == 1
    assert cache.count() == 1  # the parent's connection still works
