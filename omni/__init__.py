"""omni: a Telegram-first personal assistant."""

__version__ = "0.1.0"
