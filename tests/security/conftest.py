"""The world of tests/security/test_object_access.py (Alice's things, Bob, Charlie), shared."""

from tests.security.test_object_access import world  # noqa: F401 (a fixture)
