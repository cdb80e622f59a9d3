"""API keys of the grading service: who may call it, in which role, stored only as hashes.

    store = KeyStore(settings.keys_file)
    key, token = store.create("ada", Role.EXPERT)   # the token is shown once, never stored
    store.authenticate(token)                        # -> key (name "ada", role expert)
    store.revoke(key.key_id)                         # the next request with it gets 401

A token is `gl_<key id>_<secret>`: the id finds the entry, the SHA-256 of the whole token is
compared in constant time. A token carries 256 random bits, so a fast hash is enough (a slow
password hash guards low-entropy secrets). The file is written whole and atomically with mode
0600, and re-read when it changes, so a revocation takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

TOKEN_PREFIX = "gl"


class Role(StrEnum):
    """What a key may do: clients grade, experts also send their grades of served photos,
    operators also read metrics and make the service re-read the registry."""

    CLIENT = "client"
    EXPERT = "expert"
    OPERATOR = "operator"


class AccessDenied(PermissionError):
    """A request's key is missing, unknown or revoked (401), or its role may not do this (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class ApiKey:
    """One key: `name` is whose it is (an expert's grades are recorded under it)."""

    key_id: str
    name: str
    role: Role
    created: str
    token_sha256: str
    revoked: str | None = None

    def public(self) -> dict[str, str | None]:
        """The key as `gradeline keys list` shows it: never its hash."""
        return {"key_id": self.key_id, "name": self.name, "role": self.role.value,
                "created": self.created, "revoked": self.revoked}


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """The keys in a JSON file at `path` (missing means no keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def entries(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return sorted(self._current().values(), key=lambda key: (key.created, key.key_id))

    def active(self) -> list[ApiKey]:
        """The keys that authenticate."""
        return [key for key in self.entries() if key.revoked is None]

    def create(self, name: str, role: Role | str) -> tuple[ApiKey, str]:
        """A new key for `name` in `role` and its token, which is returned only here."""
        name = name.strip()
        if not name or len(name) > 128:
            raise ValueError("a key's name (who holds it) must be 1 to 128 characters")
        key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id, name, Role(role), datetime.now(UTC).isoformat(timespec="seconds"),
                     _sha256(token))
        with self._lock:
            keys = dict(self._read())
            keys[key_id] = key
            self._write(keys)
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke `key_id` for good; KeyError when there is no such key."""
        with self._lock:
            keys = dict(self._read())
            if key_id not in keys:
                raise KeyError(f"no key {key_id!r} in {self.path}")
            if keys[key_id].revoked is None:
                keys[key_id] = ApiKey(**{**asdict(keys[key_id]),
                                         "revoked": datetime.now(UTC).isoformat(
                                             timespec="seconds")})
                self._write(keys)
            return keys[key_id]

    def authenticate(self, token: str | None) -> ApiKey:
        """The active key whose token this is; AccessDenied(401) otherwise."""
        if not token:
            raise AccessDenied(401, "no API key: send 'Authorization: Bearer <key>' "
                                 "(an operator creates keys with `gradeline keys create`)")
        parts = token.split("_", 2)
        key = self._current().get(parts[1]) if len(parts) == 3 and parts[0] == TOKEN_PREFIX \
            else None
        if key is None or not hmac.compare_digest(key.token_sha256, _sha256(token)):
            raise AccessDenied(401, "the API key is not valid")
        if key.revoked is not None:
            raise AccessDenied(401, f"the API key {key.key_id} was revoked at {key.revoked}")
        return key

    def _current(self) -> dict[str, ApiKey]:
        """The keys as the file holds them now (re-read only when it changed)."""
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, ApiKey]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._keys, self._seen = {}, None
            return self._keys
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            entries = json.loads(self.path.read_text())
            self._keys = {entry["key_id"]: ApiKey(**{**entry, "role": Role(entry["role"])})
                          for entry in entries}
            self._seen = (stat.st_mtime_ns, stat.st_size)
        return self._keys

    def _write(self, keys: dict[str, ApiKey]) -> None:
        """Replace the file in one step, readable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump([{**asdict(key), "role": key.role.value} for key in keys.values()],
                          out, indent=1)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._keys, self._seen = keys, None  # re-stat on the next read
