"""The test session's fixtures and hooks, each defined once in tests/fixtures/ and registered here:
directory conftests define only what their own suite uses, and never import another's fixtures
(pytest would run an imported session fixture once per directory)."""

pytest_plugins = ["tests.fixtures.kinds", "tests.fixtures.stack", "tests.fixtures.control", "tests.fixtures.replay"]
