"""Every ``OMNI_*`` setting, read once from the environment and ``.env``.

The CLI builds one :class:`Settings` with :func:`load_settings` and passes it down; no other
module reads ``os.environ`` for ``OMNI_*`` names. A bad value becomes :class:`SettingsError`
whose message is one line naming the variable, which the CLI prints before exiting with 2.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from omni.errors import SettingsError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]

# Async drivers the store can run on; anything else would fail later with a worse message.
ASYNC_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")


def _split_ids(value: object) -> object:
    """Parse ``"1, 2,3"`` into a frozenset of ints; ``*`` is handled by the model validator."""
    if isinstance(value, str):
        ids: set[int] = set()
        for part in value.split(","):
            part = part.strip()
            if not part or part == "*":
                continue
            try:
                ids.add(int(part))
            except ValueError:
                raise ValueError(f"{part!r} is not a numeric Telegram user id") from None
        return frozenset(ids)
    return value


class Settings(BaseSettings):
    """The contract's settings (CONTRACT.md) plus a few tuning knobs of our own."""

    model_config = SettingsConfigDict(
        env_prefix="OMNI_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    llm_model: str | None = None
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    database_url: str = ""
    data_dir: Path = Path("data")
    workspace: Path = Path()
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    allowed_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    allow_everyone: bool = Field(default=False, exclude=True)
    mcp_config: Path | None = None
    skills_dirs: Annotated[tuple[Path, ...], NoDecode] = ()
    shell_enabled: bool = False
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    gateway_token: SecretStr | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1:8443"
    telegram_webhook_secret: SecretStr | None = None
    embedding_model: str | None = None
    # A litellm transcription model (e.g. openai/whisper-1) on the LLM's endpoint; unset: voice
    # notes get a notice instead of an answer.
    transcription_model: str | None = None

    # Tuning knobs (not in the contract; safe defaults).
    history_tokens: int = Field(default=12_000, ge=500)
    memory_consolidate_every: int = Field(default=0, ge=0)
    max_tool_rounds: int = Field(default=20, ge=1, le=200)
    tool_timeout: float = Field(default=60.0, gt=0)
    llm_timeout: float = Field(default=120.0, gt=0)
    web_allow_private: bool = False
    # Web search (skills/web): at most one provider, a SearXNG instance or a Brave or Tavily key.
    # The API URLs default to the real ones; changing them is for a proxy or a test double.
    searxng_url: str | None = None
    brave_api_key: SecretStr | None = None
    brave_api_url: str = "https://api.search.brave.com/res/v1/web/search"
    tavily_api_key: SecretStr | None = None
    tavily_api_url: str = "https://api.tavily.com/search"
    # Let the search endpoint sit on a loopback/private address (a self-hosted SearXNG) without
    # opening fetch_url to the whole private network as OMNI_WEB_ALLOW_PRIVATE does.
    web_search_allow_private: bool = False
    # The skills server's own limits (SECURITY.md): what one call may write, what a non-admin's
    # folder may hold, and who may talk to its HTTP transports.
    files_max_write_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    files_quota_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # Telegram: the largest voice note, photo or document the bot downloads (the Bot API serves
    # at most 20 MB).
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    mcp_token: SecretStr | None = None
    mcp_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # omni gateway: the largest request body, how long one request may take, how many run at once.
    gateway_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    gateway_timeout: float = Field(default=120.0, gt=0)
    gateway_concurrency: int = Field(default=16, ge=1)
    # Tokens (prompt + completion) one user may spend per UTC day; 0: no limit. An admin can
    # set a user's own limit (/limit), which wins over this default.
    usage_daily_tokens: int = Field(default=0, ge=0)
    # Several workers on one database: a claimed update whose worker stopped renewing its lease
    # for this long is taken over by another worker.
    update_lease_s: float = Field(default=60.0, ge=5)
    # Telegram: an answer that would take more messages than this goes out as a .md document
    # after a short summary message (bot/long_answer.py).
    long_answer_messages: int = Field(default=3, ge=1)
    # Telegram: show answers while they are written (a draft in private chats, an edited message
    # in groups: bot/stream.py); off, each answer arrives whole.
    stream_answers: bool = True
    # The Telegram user whose memory the skills server's callers without ``_meta`` (IDEs) share.
    memory_user: int | None = None
    # Reminders and scheduled tasks (agent/schedule_tools.py, agent/scheduler.py): the zone a
    # user's times are read in until they set their own with /tz; a run found later than the
    # grace period is reported missed instead of fired; each user's limits.
    timezone: str = "UTC"
    schedule_grace_s: float = Field(default=600.0, ge=0)
    schedule_max_jobs: int = Field(default=50, ge=1)
    schedule_min_interval_s: int = Field(default=300, ge=60)

    @model_validator(mode="before")
    @classmethod
    def _star_allows_everyone(cls, data: Any) -> Any:
        if isinstance(data, dict):
            raw = data.get("allowed_ids")
            if isinstance(raw, str) and "*" in {p.strip() for p in raw.split(",")}:
                data = {**data, "allow_everyone": True}
        return data

    @field_validator("admin_ids", "allowed_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator("skills_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p.strip())
        return value

    @field_validator("mcp_token", "gateway_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        # They guard the agent and tools that can write files and run commands: a guessable one
        # guards nothing.
        if value is not None and 0 < len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("mcp_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip().lower() for h in value.split(",") if h.strip())
        return value

    @field_validator(
        "memory_user", "transcription_model", "searxng_url", "brave_api_key", "tavily_api_key", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("searxng_url", "brave_api_url", "tavily_api_url")
    @classmethod
    def _check_search_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_search_provider(self) -> Settings:
        # Two providers would leave which one answers (and is billed) to a rule nobody reads.
        # Raised as SettingsError, not ValueError, so the line names the variables, not "settings".
        providers = {
            "OMNI_SEARXNG_URL": self.searxng_url,
            "OMNI_BRAVE_API_KEY": self.brave_api_key,
            "OMNI_TAVILY_API_KEY": self.tavily_api_key,
        }
        chosen = [name for name, value in providers.items() if value is not None]
        if len(chosen) > 1:
            raise SettingsError(f"{', '.join(chosen)}: more than one web search provider is set; keep one")
        return self

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # stdlib, read only when set

        if not value.strip():
            return "UTC"  # blank: the default, as for the other optional settings
        try:
            if value != value.strip() or ".." in value or value.startswith("/"):
                raise ValueError(value)
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone name (e.g. Europe/Berlin, UTC)") from None
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("telegram_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("must be a public https:// URL")
        return value or None

    @field_validator("telegram_webhook_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8443")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # blank: one is generated and kept (bot/webhook.py)
        # What Telegram accepts, and long enough not to be guessed: whoever knows it can post
        # updates in any user's name, an admin's included.
        if not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 16 to 256 characters of A-Z, a-z, 0-9, _ and - (what Telegram accepts)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError("is not a database URL (expected e.g. sqlite+aiosqlite:///data/omni.db)")
        if scheme not in ASYNC_DRIVERS:
            raise ValueError(f"driver {scheme!r} is not supported; use one of {', '.join(ASYNC_DRIVERS)}")
        if scheme.startswith("sqlite") and not rest.startswith("/"):
            raise ValueError("an SQLite URL needs three slashes: sqlite+aiosqlite:///path/to/omni.db")
        return value

    @field_validator("mcp_config")
    @classmethod
    def _check_mcp_config(cls, value: Path | None) -> Path | None:
        if value is None or str(value) == "":
            return None
        path = value.expanduser().resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        return path

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        # frozen=True: derived values are set through object.__setattr__ once, here.
        data_dir = self.data_dir.expanduser().resolve()
        object.__setattr__(self, "data_dir", data_dir)
        workspace = self.workspace if str(self.workspace) not in ("", ".") else data_dir / "workspace"
        object.__setattr__(self, "workspace", workspace.expanduser().resolve())
        object.__setattr__(self, "skills_dirs", tuple(p.resolve() for p in self.skills_dirs))
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{data_dir / 'omni.db'}")
        return self

    def is_allowed(self, user_id: int) -> bool:
        """Whether the environment alone lets this user chat (admins always may)."""
        return self.allow_everyone or user_id in self.admin_ids or user_id in self.allowed_ids

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redaction filter."""
        values = [
            self.telegram_token,
            self.llm_api_key,
            self.gateway_token,
            self.telegram_webhook_secret,
            self.mcp_token,
            self.brave_api_key,
            self.tavily_api_key,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    def require(self, *names: str) -> None:
        """Fail with a :class:`SettingsError` when a setting a command needs is unset."""
        for name in names:
            value = getattr(self, name)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                raise SettingsError(f"OMNI_{name.upper()}: is required by this command but not set")


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning any failure into a one-line :class:`SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = f"OMNI_{field.upper()}" if field else "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message}") from None
    except UnicodeDecodeError as exc:  # only .env is decoded: the environment is already str
        raise SettingsError(f"{ENV_FILE}: {_undecodable(exc)}") from None
    except OSError as exc:
        if exc.filename is None or Path(str(exc.filename)).name != ENV_FILE:
            raise
        raise SettingsError(f"{ENV_FILE}: cannot be read ({exc.strerror or exc})") from None


ENV_FILE = ".env"
# Drivers a supported URL needs that omni does not install itself.
OPTIONAL_DRIVERS = {"postgresql+asyncpg": "asyncpg"}


def _undecodable(exc: UnicodeDecodeError) -> str:
    """Where .env stops being UTF-8, without echoing its contents (it holds secrets)."""
    byte = f"0x{exc.object[exc.start]:02x}" if exc.start < len(exc.object) else "a byte"
    try:
        raw = Path(ENV_FILE).read_bytes()
        raw.decode("utf-8")
    except UnicodeDecodeError as whole:  # the file decoded in one piece gives a line number
        line = raw.count(b"\n", 0, whole.start) + 1
        return f"is not valid UTF-8 ({byte} on line {line}); save it as UTF-8"
    except OSError:
        pass
    return f"is not valid UTF-8 ({byte}); save it as UTF-8"


def require_driver(url: str) -> None:
    """Fail with a :class:`SettingsError` when the database URL's driver is not installed.

    Called by what opens the database (``omni mcp`` does not, so it need not have the driver).
    """
    scheme = url.partition("://")[0]
    module = OPTIONAL_DRIVERS.get(scheme)
    if module is None:
        return
    try:
        importlib.import_module(module)  # a real import: a broken install counts as missing
    except ImportError:
        raise SettingsError(
            f"OMNI_DATABASE_URL: the {scheme} driver {module} is not installed; install it into "
            f"omni's environment (`pip install {module}`, or `uv add {module}` in a checkout)"
        ) from None


def check_folders(settings: Settings, *, workspace: bool = True) -> None:
    """Create OMNI_DATA_DIR (and OMNI_WORKSPACE) if needed and make sure they take writes.

    Every command writes there sooner or later; checking up front turns a file in the way or a
    read-only location into one line naming the setting instead of a traceback mid-start.
    """
    _writable_folder("OMNI_DATA_DIR", settings.data_dir)
    if workspace:
        _writable_folder("OMNI_WORKSPACE", settings.workspace)


def _writable_folder(name: str, path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # mkdir(exist_ok=True) still refuses a file of that name
        raise SettingsError(f"{name}: {path} is not a folder (a file has that name)") from None
    except NotADirectoryError:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        where = f"{blocker} is a file" if blocker is not None else "a parent is not a folder"
        raise SettingsError(f"{name}: {path} is not a folder ({where})") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise SettingsError(f"{name}: {path} is not writable ({exc.strerror})") from None
        raise SettingsError(f"{name}: {path} cannot be created ({exc.strerror or exc})") from None
    # The folder exists: can we add files? (access() also reports a read-only mount to root.)
    if not os.access(path, os.W_OK | os.X_OK):
        raise SettingsError(f"{name}: {path} is not writable")


_SECRET_QUERY = re.compile(r"key|token|secret|pass|sig|auth", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def mask_urls_in(text: str) -> str:
    """``text`` (an error message, say) with every URL in it passed through :func:`mask_url`."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match.group()), text)


def mask_url(url: str) -> str:
    """``url`` fit to print: its password (or a lone user, often a key) and secret-looking
    query values replaced by ``***``."""
    scheme = url.partition("://")[0]
    if "+" in scheme or scheme.startswith(("sqlite", "postgres")):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            pass  # not a URL SQLAlchemy reads: mask it like any other below
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))
