"""Settings: the environment (.env, with the token and database) and a JSON settings file."""

import json
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which and what to do."""


def release():
    """This release's facts: version, schema it migrates to, health queries."""
    with open(os.path.join(PACKAGE_DIR, "release.json"), encoding="utf-8") as f:
        return json.load(f)


def settings():
    """The settings file named by BOT_SETTINGS_FILE (defaults when unset)."""
    values = {"health_host": "127.0.0.1", "health_port": 8080, "log_level": "INFO", "tick_seconds": 0}
    path = os.environ.get("BOT_SETTINGS_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                values.update(json.load(f))
        except (OSError, ValueError) as e:
            raise ConfigError("cannot read the settings file %s: %s" % (path, e))
    return values


def token():
    value = os.environ.get("BOT_TOKEN", "")
    if not value:
        raise ConfigError("BOT_TOKEN is not set: put the bot's token in the .env file")
    return value


def log_file():
    return os.environ.get("BOT_LOG_FILE", "")
