from __future__ import annotations

from pathlib import Path

import pytest

from omni.errors import SettingsError
from omni.settings import load_settings


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.workspace == tmp_path / "data" / "workspace"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}"
    assert settings.admin_ids == frozenset()
    assert not settings.allow_everyone
    assert not settings.shell_enabled
    assert settings.log_level == "INFO"
    assert settings.telegram_api_url == "https://api.telegram.org"


def test_ids_are_parsed_to_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_ADMIN_IDS", " 1, 2,,3 ")
    monkeypatch.setenv("OMNI_ALLOWED_IDS", "10")
    settings = load_settings()
    assert settings.admin_ids == {1, 2, 3}
    assert settings.allowed_ids == {10}
    assert settings.is_allowed(2) and settings.is_allowed(10) and not settings.is_allowed(11)


def test_star_allows_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_ALLOWED_IDS", "*")
    settings = load_settings()
    assert settings.allow_everyone and settings.is_allowed(987654)


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OMNI_LLM_MODEL=from-file\nOMNI_ADMIN_IDS=5\n")
    monkeypatch.setenv("OMNI_LLM_MODEL", "from-env")
    settings = load_settings()
    assert settings.llm_model == "from-env"
    assert settings.admin_ids == {5}


def test_secrets_are_hidden_from_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_TELEGRAM_TOKEN", "123456:SECRETSECRETSECRET")
    monkeypatch.setenv("OMNI_LLM_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert "SECRET" not in repr(settings) and "sk-very" not in repr(settings)
    assert set(settings.secrets()) == {"123456:SECRETSECRETSECRET", "sk-very-secret"}


def test_skills_dirs_split_on_path_separator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_SKILLS_DIRS", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert load_settings().skills_dirs == (tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OMNI_ADMIN_IDS", "12,abc", "OMNI_ADMIN_IDS: 'abc' is not a numeric Telegram user id"),
        ("OMNI_ALLOWED_IDS", "1;2", "OMNI_ALLOWED_IDS: '1;2' is not a numeric Telegram user id"),
        ("OMNI_DATABASE_URL", "mysql://db", "OMNI_DATABASE_URL: driver 'mysql' is not supported"),
        ("OMNI_DATABASE_URL", "not a url", "OMNI_DATABASE_URL: is not a database URL"),
        ("OMNI_LOG_LEVEL", "LOUD", "OMNI_LOG_LEVEL: Input should be"),
        ("OMNI_MCP_CONFIG", "/no/such/mcp.json", "OMNI_MCP_CONFIG: cannot read /no/such/mcp.json"),
        ("OMNI_TELEGRAM_API_URL", "ftp://x", "OMNI_TELEGRAM_API_URL: must be an http"),
        ("OMNI_SHELL_ENABLED", "perhaps", "OMNI_SHELL_ENABLED: Input should be a valid boolean"),
        ("OMNI_TELEGRAM_WEBHOOK_LISTEN", "8443", "OMNI_TELEGRAM_WEBHOOK_LISTEN: must be host:port"),
        ("OMNI_MCP_TOKEN", "secret", "OMNI_MCP_TOKEN: must be at least 16 characters"),
        ("OMNI_TIMEZONE", "Mars/Olympus", "OMNI_TIMEZONE: is not an IANA time zone name"),
        ("OMNI_SCHEDULE_MIN_INTERVAL_S", "5", "OMNI_SCHEDULE_MIN_INTERVAL_S: Input should be greater"),
        ("OMNI_TELEGRAM_WEBHOOK_SECRET", "short", "OMNI_TELEGRAM_WEBHOOK_SECRET: must be 16 to 256"),
        ("OMNI_TELEGRAM_WEBHOOK_SECRET", "has spaces, not ok", "OMNI_TELEGRAM_WEBHOOK_SECRET: must be 16"),
        ("OMNI_TELEGRAM_WEBHOOK_URL", "http://x.example/hook", "OMNI_TELEGRAM_WEBHOOK_URL: must be a public"),
        ("OMNI_FILES_QUOTA_BYTES", "lots", "OMNI_FILES_QUOTA_BYTES: Input should be a valid integer"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_invalid_mcp_config_json_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mcp.json"
    config.write_text("{not json")
    monkeypatch.setenv("OMNI_MCP_CONFIG", str(config))
    with pytest.raises(SettingsError, match=r"OMNI_MCP_CONFIG: .*mcp.json is not valid JSON \(line 1"):
        load_settings()


def test_require_names_the_missing_setting() -> None:
    with pytest.raises(SettingsError, match="OMNI_TELEGRAM_TOKEN: is required"):
        load_settings().require("telegram_token")
