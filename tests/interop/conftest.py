import pytest
from bounded import LOG, record


@pytest.fixture(autouse=True)
def _record_hostile_reads(request):
    LOG.clear()
    yield
    record(request.node)
