"""docs/settings.md is generated from the definitions in code; this keeps the file equal to them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kafkalite.config import BROKER_SETTINGS, setting_env_name
from kafkalite.log.config import TOPIC_CONFIGS

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_settings_doc", ROOT / "scripts" / "gen_settings_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_settings_md_is_what_the_code_defines():
    text = load_generator().render()
    assert (ROOT / "docs" / "settings.md").read_text() == text, "run scripts/gen_settings_doc.py"
    for name, (_kind, _default, doc) in BROKER_SETTINGS.items():
        assert f"| `{name}` | `{setting_env_name(name)}` |" in text and doc.split("|")[0].strip() in text
    for spec in TOPIC_CONFIGS:
        assert f"| `{spec.name}` | {spec.type} |" in text
