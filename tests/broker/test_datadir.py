"""The data dir's lock in one process: flock locks belong to the open file, so two brokers in one process (as
kafkalite.testing runs them) exclude each other too."""

from __future__ import annotations

import os

import pytest

from kafkalite.datadir import DataDirError, DataDirLock


def test_the_lock_is_exclusive_within_one_process_and_released(tmp_path):
    data = tmp_path / "data"
    with DataDirLock(str(data)) as lock:
        assert lock.held and (data / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataDirError, match=f"in use by kafkalite pid {os.getpid()}"):
            DataDirLock(str(data)).acquire()
    assert not lock.held
    with DataDirLock(str(data)):  # free again
        pass


def test_a_file_as_data_dir_is_not_a_directory(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(DataDirError, match="is not a directory"):
        DataDirLock(str(tmp_path / "f")).acquire()
