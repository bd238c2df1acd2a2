"""Storage failures.

OmniError
└── StoreError             anything the store cannot do
    ├── StoreUnavailable   the database cannot be opened or migrated
    └── NotFound           a row that should exist does not
"""

from __future__ import annotations

from omni.errors import OmniError


class StoreError(OmniError):
    user_message = "I can't reach my memory right now. Please try again in a moment."


class StoreUnavailable(StoreError):
    pass


class NotFound(StoreError):
    user_message = "I couldn't find that."
