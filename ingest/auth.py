"""Per-organisation ingest keys.

Ingest keys identify which organisation a player belongs to; like Mux's environment
keys they end up in browser code, so they are not secrets against viewers. They stop
one organisation's players from writing into another's data.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from ingest.config import Secret
from ingest.errors import UnauthorizedError


class KeyRing:
    """Maps a presented key to its organisation, comparing in constant time."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Mapping[Secret, str]) -> None:
        # Compare fixed-length digests so neither length nor content leaks through timing.
        self._digests = [(hashlib.sha256(k.encode()).digest(), org) for k, org in keys.items()]

    def org_for(self, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str:
        """Return the org of the key in ``X-API-Key``, ``Authorization: Bearer`` or ``?key=``.

        The query parameter exists for ``navigator.sendBeacon``, which cannot set headers;
        the collector never logs request URLs (no access log), so the key stays out of logs.
        """
        presented = _presented_key(headers)
        if presented is None and query is not None and query.get("key", "").strip():
            presented = query["key"].strip()
        if presented is None:
            raise UnauthorizedError(
                "missing ingest key: send X-API-Key, Authorization: Bearer or ?key="
            )
        return self.org_for_key(presented)

    def org_for_key(self, presented: str) -> str:
        """Return the org of ``presented`` (e.g. a key a player was given in a URL)."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: str | None = None
        for candidate, org in self._digests:
            # No early exit: every configured key is compared on every request.
            if hmac.compare_digest(candidate, digest):
                found = org
        if found is None:
            raise UnauthorizedError("invalid ingest key")
        return found


def _presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("X-API-Key")
    if key:
        return key.strip()
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None
