"""Smoke: me and dashboard answer."""
from kairand.api.client import ApiClient


async def test_me(api: ApiClient) -> None:
    """N5: me."""
    r = await api.as_user("aut").get("/v1/me")
    print(r)
    assert r.status == 200
    r = await api.as_user("aut").get("/v1/dashboard")
    print(r)
    assert r.status == 200
    r = await api.as_user("nobody").get("/v1/dashboard")
    print(r)
    r = await api.as_user("aud").get("/v1/statistics")
    print(r)
    r = await api.as_user("aud").get("/v1/audit")
    print(r)
