import pytest

from brokerproc import BrokerProcess


@pytest.fixture
def broker_process(tmp_path):
    """A fresh broker on an ephemeral loopback port, stopped after the test."""
    proc = BrokerProcess(str(tmp_path / "data"))
    proc.start()
    yield proc
    proc.kill()
