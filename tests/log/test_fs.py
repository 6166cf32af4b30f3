import errno

import pytest

from kafkalite.log import FileSystem
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash


def test_power_cut_drops_unsynced_data_and_unsynced_directory_entries():
    fs = FaultyFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/a", create=True)
    f.pwrite(b"durable", 0)
    f.fsync()
    fs.fsync_dir("/d")
    f.pwrite(b"+lost", 7)
    g = fs.open("/d/b", create=True)  # never fsync_dir'ed: its entry is lost
    g.pwrite(b"x", 0)
    g.fsync()
    fs.restart()
    assert fs.read_file("/d/a") == b"durable"
    assert not fs.exists("/d/b")
    with pytest.raises(OSError):
        f.pread(1, 0)  # handles do not survive a crash


def test_process_kill_keeps_everything_written():
    fs = FaultyFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/a", create=True)
    f.pwrite(b"written", 0)
    fs.restart(lose_unsynced="none")
    assert fs.read_file("/d/a") == b"written"


def test_rename_is_durable_only_after_fsync_dir():
    fs = FaultyFileSystem()
    fs.makedirs("/d")
    fs.write_file_atomic("/d/m", b"one")
    fs.write_file_atomic("/d/m", b"two")
    fs.restart()
    assert fs.read_file("/d/m") == b"two"
    f = fs.open("/d/n", create=True)
    f.fsync()
    fs.rename("/d/n", "/d/m")
    fs.restart()
    assert fs.read_file("/d/m") == b"two"


def test_injected_errors_torn_writes_and_crash_points():
    fs = FaultyFileSystem()
    fs.makedirs("/d")
    f = fs.open("/d/a", create=True)
    fs.fail("write", errno.ENOSPC)
    with pytest.raises(OSError) as e:
        f.pwrite(b"abc", 0)
    assert e.value.errno == errno.ENOSPC
    f.pwrite(b"abc", 0)  # one-shot
    fs.fail("write", errno.EIO, torn=True)
    with pytest.raises(OSError):
        f.pwrite(b"123456", 3)
    assert fs.read_file("/d/a") == b"abc123"
    fs.crash_after(1)
    f.pwrite(b"x", 0)
    with pytest.raises(SimulatedCrash):
        f.fsync()
    with pytest.raises(SimulatedCrash):
        f.pread(1, 0)
    fs.restart()
    assert not fs.exists("/d/a")  # never fsync_dir'ed


def test_some_mode_keeps_a_prefix_of_appended_bytes():
    fs = FaultyFileSystem(seed=3)
    fs.makedirs("/d")
    f = fs.open("/d/a", create=True)
    fs.fsync_dir("/d")
    f.pwrite(b"0123456789", 0)
    fs.restart(lose_unsynced="some")
    data = fs.read_file("/d/a")
    assert b"0123456789".startswith(data)


def test_real_file_system_roundtrip(tmp_path):
    fs = FileSystem()
    path = str(tmp_path / "f")
    f = fs.open(path, create=True)
    f.pwrite(memoryview(b"hello world"), 0)
    f.fsync()
    assert f.pread(5, 6) == b"world" and f.size() == 11 and f.fileno() >= 0
    f.truncate(5)
    f.close()
    fs.write_file_atomic(str(tmp_path / "m"), b"meta")
    assert fs.read_file(str(tmp_path / "m")) == b"meta"
    assert fs.listdir(str(tmp_path)) == ["f", "m"]
    fs.fsync_dir(str(tmp_path))
