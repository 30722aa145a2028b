"""What every ``svmon`` command shares: the click group and the settings."""

from __future__ import annotations

import click

from svmon.settings import Settings


def current_settings() -> Settings:
    """The settings from the environment, read when a command runs (never at import)."""
    return Settings.from_env()


@click.group()
@click.version_option(package_name="svmon")
def main() -> None:
    """Social value contract monitor."""


def redact(url: str) -> str:
    """A database URL without its user and password, for printing."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
