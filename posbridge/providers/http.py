"""The HTTP client of the providers whose every call is one JSON POST (UCanPay, the crypto
platform): the one place their aiohttp errors become posbridge errors.

- connection refused / DNS failure (``ClientConnectorError``): ``ProviderUnreachable``;
- a timeout, a reset, garbage on the wire, an HTTP status other than 200 and 4xx:
  ``OutcomeUnknown`` (the request may have been carried out);
- an HTTP 4xx: ``ProviderRejected`` with ``provider_code`` ``HTTP4xx`` (turned away unread).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from posbridge.errors import OutcomeUnknown, ProviderRejected, ProviderUnreachable

__all__ = ["JsonPoster"]


class JsonPoster:
    """POSTs JSON bodies for one provider; the session opens on first use, without cookies."""

    def __init__(self, *, title: str, timeout_s: float, log: Any) -> None:
        self._title = title  # "UCanPay", "the crypto platform": how errors name the provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._log = log
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, *, what: str) -> bytes:
        """The body of a 200 answer to ``body`` POSTed at ``url``; ``what`` names the call in
        logs and errors."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar())  # no cookies here
        started = time.monotonic()
        try:
            async with self._session.post(
                    url, data=body, headers={"Content-Type": "application/json"}) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            self._log.warning("unreachable", method=what, error=str(exc))
            raise ProviderUnreachable(f"{self._title} is unreachable: {exc}") from exc
        except TimeoutError as exc:
            self._log.warning("timeout", method=what)
            raise OutcomeUnknown(f"{self._title} did not answer {what} in time") from exc
        except aiohttp.ClientError as exc:
            self._log.warning("transport_error", method=what, error=str(exc))
            raise OutcomeUnknown(f"{what} to {self._title} failed in transit: {exc}") from exc
        self._log.debug("answered", method=what, status=status,
                        ms=round((time.monotonic() - started) * 1000))
        if 400 <= status < 500:
            raise ProviderRejected(f"{self._title} refused {what} with HTTP {status}",
                                   provider_code=f"HTTP{status}")
        if status != 200:
            raise OutcomeUnknown(f"{self._title} answered {what} with HTTP {status}")
        return raw

    async def aclose(self) -> None:
        """Close the session (a later post opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
