"""Helpers shared by several test modules: import them as `tests.support.<module>`.

conftest.py files hold fixtures only; anything a test module imports lives here (pytest puts
the repository root on sys.path: `pythonpath` in pyproject.toml)."""
