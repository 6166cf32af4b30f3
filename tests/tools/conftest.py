import itertools

import pytest

from brokerproc import BrokerProcess
from toolrun import Result, run_in_process, run_kafkalite

_names = itertools.count()


@pytest.fixture(scope="package")
def broker(tmp_path_factory):
    """One broker for the folder: a broker per test would cost its time budget. Tests use fresh names."""
    proc = BrokerProcess(str(tmp_path_factory.mktemp("tools-broker")))
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def kafkalite(broker):
    """Run a tool against the module's broker: kafkalite("topics", "list")."""
    def run(*args: str, input: str | None = None, timeout: float = 30) -> Result:
        return run_kafkalite(*args, input=input, bootstrap=broker.bootstrap, timeout=timeout)

    return run


@pytest.fixture
def topic_name(request):
    def make() -> str:
        return f"{request.node.name[:30].strip('_[]')}-{next(_names)}".replace("[", "-").replace("]", "")

    return make


@pytest.fixture
def tool(broker):
    """Run a tool in this process against the folder's broker: tool("consume", "t", "--offset", "0")."""
    def run(*args: str, input: str | bytes = b"") -> Result:
        return run_in_process(*args, input=input, bootstrap=broker.bootstrap)

    return run
