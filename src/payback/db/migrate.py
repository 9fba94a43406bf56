"""Run the Alembic migrations programmatically (``payback db upgrade``, test fixtures).

The revisions live in ``migrations/`` at the repository root, next to ``alembic.ini``; both are
found relative to this package, which works from a checkout and from an editable install.
Logging is left alone so that callers keep their own configuration.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: src/payback/db/migrate.py -> repository root
REPO_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` pointing at the repository's migrations and at ``url``."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"Alembic migrations not found at {MIGRATIONS_DIR}; "
                           "install Payback from a checkout (pip install -e .)")
    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def current_head() -> str | None:
    """The newest revision id in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
