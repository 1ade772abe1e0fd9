"""The credentials key kept in a Prefect Secret block instead of a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from prefect.blocks.system import Secret
from pydantic import SecretStr

from inlet.errors import ConfigError
from inlet.settings import Settings
from inlet.store import Vault


def test_the_key_can_live_in_a_prefect_secret_block(prefect_api: str, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    Secret(value=SecretStr(key)).save("inlet-test-vault-key", overwrite=True)
    vault = Vault.from_settings(Settings(home=tmp_path, secret_key_block="inlet-test-vault-key"))
    assert Vault(SecretStr(key)).unseal(vault.seal({"token": "t"})) == {"token": "t"}
    assert not (tmp_path / "secret.key").exists()


def test_a_missing_block_is_a_config_error(prefect_api: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Prefect Secret block 'inlet-no-such-key'"):
        Vault.from_settings(Settings(home=tmp_path, secret_key_block="inlet-no-such-key"))
