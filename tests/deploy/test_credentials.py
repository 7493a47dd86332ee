"""LoadCredential: the API key and secret from $CREDENTIALS_DIRECTORY become the settings' values."""

from __future__ import annotations

import pytest

from hean.config import load_settings
from hean.credentials import read_credentials


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("HEAN_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HEAN_ENV_FILE", str(tmp_path / "hean.env"))
    (tmp_path / "hean.env").write_text("HEAN_BYBIT__REST_URL=http://127.0.0.1:18900\n")
    return monkeypatch


def test_credentials_directory_supplies_key_and_secret_over_env_and_file(clean_env, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bybit_api_key").write_text("key-from-systemd\n")
    (creds / "bybit_api_secret").write_text("secret-from-systemd")
    clean_env.setenv("CREDENTIALS_DIRECTORY", str(creds))
    clean_env.setenv("HEAN_BYBIT__API_KEY", "key-from-env")
    clean_env.setenv("HEAN_BYBIT__API_SECRET", "secret-from-env")
    s = load_settings()
    assert s.bybit.api_key.get_secret_value() == "key-from-systemd"
    assert s.bybit.api_secret.get_secret_value() == "secret-from-systemd"
    # the rest of the section still comes from the env file
    assert s.bybit.rest_url == "http://127.0.0.1:18900"
    # and the log redactor knows the secret
    assert "secret-from-systemd" in s.secrets()


def test_no_credentials_directory_changes_nothing(clean_env):
    clean_env.setenv("HEAN_BYBIT__API_KEY", "key-from-env")
    clean_env.setenv("HEAN_BYBIT__API_SECRET", "secret-from-env")
    s = load_settings()
    assert s.bybit.api_key.get_secret_value() == "key-from-env"


def test_missing_or_empty_files_are_ignored(tmp_path):
    (tmp_path / "bybit_api_key").write_text("\n")
    assert read_credentials({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == {}
    assert read_credentials({"CREDENTIALS_DIRECTORY": str(tmp_path / "nope")}) == {}
    assert read_credentials({}) == {}


def test_an_operator_command_reads_the_deployed_stack_credentials_beside_its_env_file(tmp_path):
    from hean.credentials import deployed_credentials
    env = tmp_path / "hean.env"
    env.write_text("")
    assert deployed_credentials(env) == ({}, None), "nothing deployed: nothing found, nothing to explain"
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "bybit_api_key").write_text("k-123\n")
    (tmp_path / "credentials" / "bybit_api_secret").write_text("s-456\n")
    assert deployed_credentials(env) == ({"api_key": "k-123", "api_secret": "s-456"}, None)
