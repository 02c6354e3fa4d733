"""Fixtures of the backend tests."""

import pytest

from ai_writer.backends.writing.generation import GenerationService


@pytest.fixture
def service_for():
    services = []

    def make(engine, **kwargs):
        services.append(GenerationService(engine, **kwargs))
        return services[-1]

    yield make
    for service in services:
        service.close()
