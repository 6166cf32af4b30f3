import itertools

import pytest

from brokerproc import BrokerProcess
from kafkalite_client import Admin

_names = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker per test module (starting one per test would cost the time budget); tests use fresh topics."""
    proc = BrokerProcess(str(tmp_path_factory.mktemp("client-broker")))
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def bootstrap(broker):
    return broker.bootstrap


@pytest.fixture
def new_topic(bootstrap, request):
    """`await new_topic(partitions)` creates a topic named after the test."""
    async def create(partitions: int = 1, **configs) -> str:
        name = f"{request.node.name[:40].strip('_[]')}-{next(_names)}".replace("[", "-").replace("]", "")
        async with Admin(bootstrap) as admin:
            await admin.create_topic(name, partitions, configs=configs or None)
        return name

    return create
