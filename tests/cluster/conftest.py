import pytest

from etcdproc import EtcdProcess


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    proc = EtcdProcess(str(tmp_path_factory.mktemp("etcd"))).start()
    yield proc
    proc.stop()
