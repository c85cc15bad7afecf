"""The LINE client reads the proxy variables once at start (not per request)."""

from __future__ import annotations

import pytest

from kairand.line.client import _configuration


def test_https_proxy_is_resolved_once_with_its_credentials_as_a_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    configuration = _configuration("https://api.line.me", "token", 8)
    assert configuration.proxy == "http://proxy.example:3128"
    assert configuration.proxy_headers == {"Proxy-Authorization": "Basic dXNlcjpwdw=="}


def test_no_proxy_and_no_variable_mean_a_direct_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert _configuration("https://api.line.me", "token", 8).proxy is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.line.me")
    assert _configuration("https://api.line.me", "token", 8).proxy is None
    assert _configuration("https://api-data.line.me", "token", 8).proxy is not None
