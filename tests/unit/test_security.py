"""Security properties that can be checked in the source: SQL is never built from
strings, secrets stay out of reprs and logs, tokens are stored as hashes only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from svmon.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("svmon", "models", "streams", "alerts", "infra")
SQL_CALLS = {"text", "exec_driver_sql", "execute"}


def _project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _built_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of text()/execute()/exec_driver_sql() whose SQL is not a plain literal."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if name not in SQL_CALLS:
            continue
        arg = node.args[0]
        built = isinstance(arg, ast.JoinedStr | ast.BinOp) or (
            isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
            and arg.func.attr == "format")
        if built:
            found.append((node.lineno, name))
    return found


def test_no_sql_is_built_from_strings() -> None:
    """Every query is SQLAlchemy Core or a literal with bound parameters."""
    offenders = [f"{p.relative_to(ROOT)}:{line} {name}()"
                 for p in _project_files()
                 for line, name in _built_strings(ast.parse(p.read_text(), str(p)))]
    assert offenders == []


def test_the_check_finds_sql_built_from_strings() -> None:
    tree = ast.parse('conn.execute(text(f"SELECT * FROM t WHERE id = {x}"))\n'
                     'conn.exec_driver_sql("DELETE FROM " + name)\n'
                     'conn.execute(text("SELECT 1 WHERE a = {}".format(a)))\n'
                     'conn.execute(text("SELECT :a"), {"a": 1})\n')
    assert sorted(_built_strings(tree)) == [(1, "text"), (2, "exec_driver_sql"), (3, "text")]


@pytest.mark.parametrize("field,value,secret", [
    ("smtp_url", "smtp://alerts:hunter2-smtp@mail.example:587", "hunter2-smtp"),
    ("webhook_secret", "hunter2-webhook", "hunter2-webhook"),
    ("database_url", "postgresql://svmon:hunter2-db@db.example/svmon", "hunter2-db"),
])
def test_settings_do_not_show_secrets(field: str, value: str, secret: str) -> None:
    assert secret not in repr(Settings(**{field: value}))


def test_secrets_come_only_from_the_environment() -> None:
    env = {"SVMON_SMTP_URL": "smtp://u:p@h:25", "SVMON_WEBHOOK_SECRET": "s3",
           "DATABASE_URL": "postgresql://u:p@h/db"}
    s = Settings.from_env(env)
    assert (s.smtp_url, s.webhook_secret, s.database_url) == (
        env["SVMON_SMTP_URL"], env["SVMON_WEBHOOK_SECRET"], env["DATABASE_URL"])
    assert Settings.from_env({}).webhook_secret == "" and Settings().smtp_url == ""
