"""Exchange credentials from systemd's `LoadCredential=` ($CREDENTIALS_DIRECTORY).

Under systemd the API key and secret are files in a directory only this unit can read (systemd
mounts it per service, not inherited like the environment, absent from `systemctl show` and from
argv). When that directory holds `bybit_api_key` / `bybit_api_secret`, they become the settings'
`bybit.api_key` / `bybit.api_secret`, winning over the environment and the env file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# credential file name -> field of the `bybit` settings section
CREDENTIAL_FIELDS = {"bybit_api_key": "api_key", "bybit_api_secret": "api_secret"}


def read_credentials(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `bybit` fields found in $CREDENTIALS_DIRECTORY (empty when unset or absent)."""
    env = os.environ if environ is None else environ
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return {}
    return _read_fields(Path(directory))


def _read_fields(directory: Path) -> dict[str, str]:
    """The `bybit` fields of the credential files in `directory` (missing or empty files are skipped;
    a file that cannot be read raises PermissionError)."""
    found: dict[str, str] = {}
    for name, field in CREDENTIAL_FIELDS.items():
        try:
            # A trailing newline from `echo secret > file` is not part of the secret.
            value = (directory / name).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if value:
            found[field] = value
    return found


def with_credentials(overrides: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`overrides` for the settings, plus the credentials found (an explicit `bybit` override wins).

    They are passed as init values, which pydantic-settings merges over the `HEAN_BYBIT__*`
    environment field by field, so the rest of the `bybit` section still comes from the env file.
    """
    found = read_credentials(environ)
    if not found or "bybit" in overrides:
        return overrides
    return {**overrides, "bybit": found}


def deployed_credentials(env_file: Path) -> tuple[dict[str, str], str | None]:
    """For an operator's command on a deployed host (`hean status`), which runs outside systemd: the
    stack's credential files beside its env file (`/etc/<stack>/credentials/`, root only, the files
    systemd hands the signing processes). Returns the `bybit` fields found, or why there are none
    although the stack has them (the caller is not root), or ({}, None) where nothing is deployed.
    """
    directory = env_file.parent / "credentials"
    try:
        return _read_fields(directory), None
    except PermissionError:
        return {}, f"the stack's API credentials in {directory} are root-only: run this as root to read the account"
