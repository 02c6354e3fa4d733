"""Fixtures of the dialog tests: the interface in English."""

import pytest

from ai_writer.studio.i18n import set_language


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")
