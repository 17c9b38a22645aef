"""What the browser tests share: Debian's chromium (the `browser` fixture is in
tests/conftest.py) and the marks that let a live server run.

Naming the apps makes the flush between tests cascade: PostgreSQL refuses to truncate auth_user
otherwise, because knox's own token table (created by its migrations even though
calculator.ApiToken replaces it) still references it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")

BROWSER_TEST_MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=list(settings.INSTALLED_APPS)),
]
