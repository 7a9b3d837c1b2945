"""Shared by the benchmark's tests (imported by name: pytest puts this directory on ``sys.path``)."""

TEST_AGENT = "fakeapi-test"
