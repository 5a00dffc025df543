"""The target and platform types: what a campaign measures.

A `Target` is one endpoint: a URL (`https://www.facebook.com/`, `http://example.org/`) or a bare
transport endpoint (`tcp://149.154.167.51:443` for a messenger's data centre, `tls://host:443` for
an endpoint that speaks TLS but no HTTP). A `Platform` is a named service (facebook, telegram)
with every endpoint its apps need, not only the home page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import TargetError

SCHEMES = {"http": 80, "https": 443, "tcp": None, "tls": 443}


@dataclass(frozen=True)
class Target:
    """One endpoint to measure. `url` is normalised: lower-case scheme and host."""

    url: str
    platform: str | None = None
    category: str | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def hostname(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        default = SCHEMES.get(parts.scheme)
        if default is None:
            raise TargetError(f"{self.url}: a port is required for {parts.scheme}://")
        return default

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("https", "tls")

    @property
    def uses_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def key(self) -> str:
        """The identity used to remove duplicates: the URL without a trailing slash."""
        return self.url.rstrip("/") if urlsplit(self.url).path in ("", "/") else self.url


@dataclass(frozen=True)
class Platform:
    """A named service and the endpoints that make it work."""

    name: str
    category: str
    description: str
    endpoints: tuple[str, ...]

    def targets(self) -> list[Target]:
        return [Target(url=u, platform=self.name, category=self.category) for u in self.endpoints]
