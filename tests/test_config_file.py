"""The TOML configuration file (``--config FILE`` / ``SOAPSERVICE_CONFIG``): the
variables' names in lower case, the environment over the file, unknown keys refused."""

from __future__ import annotations

import pytest

from soapservice.config import ConfigError, load_settings, variable_names
from tests.conftest import soapservice


def write(tmp_path, text):
    path = tmp_path / "soapservice.toml"
    path.write_text(text)
    return str(path)


def test_file_values_become_settings(tmp_path):
    path = write(tmp_path, """
database_url = "sqlite:////var/lib/soapservice/store.db"
port = 9090
retry_schedule = [1, 2.5, 60]
allow_private_targets = true
buffer_days = 2.5
allowed_target_cidrs = ["10.0.0.0/8", "127.0.0.1/32"]
ingest_token = "s3cret"
""")
    settings = load_settings({}, config_file=path)
    assert settings.database_url == "sqlite:////var/lib/soapservice/store.db"
    assert settings.port == 9090
    assert settings.retry_schedule_sec == (1.0, 2.5, 60.0)
    assert settings.allow_private_targets is True
    assert settings.buffer_days == 2.5
    assert settings.allowed_target_cidrs == ("10.0.0.0/8", "127.0.0.1/32")
    assert settings.ingest_token == "s3cret"


def test_the_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, 'port = 9090\nhost = "0.0.0.0"\nretention_days = 3\n')
    settings = load_settings({"SOAPSERVICE_PORT": "7070", "SOAPSERVICE_HOST": "",
                              "SOAPSERVICE_CONFIG": path})
    assert settings.port == 7070  # the variable wins
    assert settings.host == "0.0.0.0"  # an empty variable does not blank the file's value
    assert settings.retention_days == 3.0


@pytest.mark.parametrize("text, message", [
    ("prot = 8080\n", "unknown key 'prot'"),
    ("PORT = 8080\n", "unknown key 'PORT'"),
    ("soapservice_port = 8080\n", "unknown key 'soapservice_port'"),
    ("config = 'other.toml'\n", "unknown key 'config'"),
    ("[server]\nport = 1\n", "unknown key 'server'"),
    ("port = 'eighty'\n", "SOAPSERVICE_PORT='eighty' is not a valid int"),
    ("port = [1, {a = 1}]\n", "expected a string, number, boolean"),
    ("port = = 1\n", "is not valid TOML"),
    ("buffer_keep_days = 2\n", "must be at least SOAPSERVICE_BUFFER_DAYS"),
])
def test_bad_files_are_refused_with_a_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings({}, config_file=write(tmp_path, text))


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_settings({}, config_file=str(tmp_path / "nope.toml"))


def test_every_variable_is_a_key():
    names = variable_names()
    assert {"SOAPSERVICE_DATABASE_URL", "SOAPSERVICE_PORT", "SOAPSERVICE_BUFFER_KEEP_DAYS",
            "SOAPSERVICE_RETRY_SCHEDULE", "SOAPSERVICE_SMTP_URL"} <= names


def test_commands_read_the_file(tmp_path):
    """``--config`` on the command line as an operator writes it: the store named in the
    file is the one the command opens, and a bad file stops the command."""
    db = tmp_path / "from-file.db"
    path = write(tmp_path, f'database_url = "sqlite:///{db}"\n')
    env = {"PATH": "/usr/bin:/bin"}
    soapservice("account", "add", "carol", "--config", path, env=env, input="pw-carol\n")
    assert db.exists()
    out = soapservice("queue", "--config", path, env=env).stdout
    assert "carol" in out
    bad = write(tmp_path, "databse_url = 'x'\n")
    result = soapservice("queue", "--config", bad, env=env, check=False)
    assert result.returncode == 1
    assert "unknown key 'databse_url'" in result.stderr
