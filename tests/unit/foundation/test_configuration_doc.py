"""docs/configuration.md is generated from the configuration model and must be current."""

from __future__ import annotations

from kairand import configdoc
from kairand.config import Config


def test_committed_configuration_reference_is_current() -> None:
    """The committed reference equals what the generator makes from config.py today (it once
    said delivery.concurrency defaults to 16 while the code said 40). Regenerate with
    `python -m kairand.configdoc --write`."""
    committed = configdoc.DOC_PATH.read_text(encoding="utf-8")
    assert committed == configdoc.render(), "run: python -m kairand.configdoc --write"


def test_every_key_with_its_code_default_is_documented() -> None:
    """Each key of every section appears once with the model's own default."""
    text = configdoc.render()
    for section, info in Config.model_fields.items():
        model = info.annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            assert text.count(f"| `{section}.{name}` |") == 1, f"{section}.{name}"
    assert "| `delivery.concurrency` | `40` |" in text
