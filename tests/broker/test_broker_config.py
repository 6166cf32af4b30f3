"""Where broker settings come from (kafkalite/config.py), without a process: flags, KAFKALITE_* variables, the
TOML file, their precedence and the one-line messages for names that do not exist."""

from __future__ import annotations

import argparse

import pytest

from kafkalite.config import (
    BROKER_SETTINGS, FLAGS, OTHER_VARIABLES, _setting_of_env_name, add_serve_arguments, flag_env_name, load_config,
    setting_env_name,
)


def config_of(*argv: str, env: dict[str, str] | None = None):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return load_config(parser.parse_args(list(argv)), environ=env or {})


def test_the_environment_naming_rule_names_one_setting_each_and_can_be_undone():
    assert setting_env_name("log.retention.ms") == "KAFKALITE_LOG_RETENTION_MS"
    assert setting_env_name("a-b_c.d") == "KAFKALITE_A__B___C_D"
    for name in [*BROKER_SETTINGS, "a-b_c.d", "x_y-z"]:
        assert _setting_of_env_name(setting_env_name(name)) == name
    variables = [setting_env_name(n) for n in BROKER_SETTINGS] + [flag_env_name(f) for f in FLAGS]
    assert len(set(variables)) == len(variables)  # no setting's variable is a flag's
    assert not set(variables) & OTHER_VARIABLES


def test_precedence_is_flag_then_environment_then_file_then_default(tmp_path):
    toml = tmp_path / "k.toml"
    toml.write_text('"num.partitions" = 5\n"log.retention.ms" = 5000\n"log.segment.bytes" = 4096\n')
    env = {"KAFKALITE_NUM_PARTITIONS": "3", "KAFKALITE_LOG_RETENTION_MS": "6000", "KAFKALITE_CONFIG": str(toml)}
    cfg = config_of("--set", "num.partitions=2", env=env)
    assert cfg["num.partitions"] == 2  # flag over environment and file
    assert cfg["log.retention.ms"] == 6000  # environment over file
    assert cfg["log.segment.bytes"] == 4096  # file over default
    assert cfg["message.max.bytes"] == BROKER_SETTINGS["message.max.bytes"][1]
    assert cfg.warnings == []


def test_every_broker_setting_can_come_from_the_environment():
    env = {setting_env_name(name): ("false" if kind is bool else "interval" if kind is str else "12345")
           for name, (kind, _default, _doc) in BROKER_SETTINGS.items()}
    cfg = config_of(env=env)
    for name, (kind, _default, _doc) in BROKER_SETTINGS.items():
        assert cfg[name] == (False if kind is bool else "interval" if kind is str else 12345), name


def test_unknown_names_say_did_you_mean(tmp_path):
    with pytest.raises(ValueError, match=r"^--set: unknown setting 'num.partition'; did you mean num.partitions\?$"):
        config_of("--set", "num.partition=3")
    toml = tmp_path / "k.toml"
    toml.write_text('"log.retention.hour" = 1\n')
    with pytest.raises(ValueError, match=r"unknown setting 'log.retention.hour'; did you mean log.retention.ms\?"):
        config_of("--config", str(toml))
    cfg = config_of(env={"KAFKALITE_MESSAGE_MAX_BYTE": "1", "KAFKALITE_BOOTSTRAP": "x:1", "OTHER": "1"})
    assert cfg.warnings == ["ignoring KAFKALITE_MESSAGE_MAX_BYTE: it names no broker setting; did you mean "
                            "KAFKALITE_MESSAGE_MAX_BYTES (message.max.bytes)?"]


def test_log_format():
    assert config_of().log_format == "text"
    assert config_of("--log-format", "JSON").log_format == "json"
    assert config_of(env={"KAFKALITE_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ValueError, match="--log-format: log format must be one of text, json"):
        config_of("--log-format", "xml")
