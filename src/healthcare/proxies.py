"""Forwarded headers (X-Forwarded-For/-Proto/-Host/-Port), believed only from a proxy at a
configured address (issue 13, item 6).

Behind a reverse proxy the peer of every request is the proxy, so the client's address (for
the sign-in limit and the audit trail) and the scheme (for Secure cookies and HSTS) come from
its headers. A client that reaches the app directly could send those headers too: they are
used only when the peer is in ``HEALTHCARE_TRUSTED_PROXY_ADDRESSES``: addresses, CIDR networks
or host names. A host name (compose's ``proxy`` service, whose address Docker chooses) is
looked up in the background every ``RESOLVE_EVERY_SECONDS``, never on a request's time; a
name that does not resolve trusts nobody."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*"
)
RESOLVE_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class ProxyAddresses:
    networks: tuple[Network, ...]
    names: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)


def parse_proxy_addresses(text: str) -> ProxyAddresses:
    """Comma-separated addresses, CIDR networks or host names; ValueError names a bad one."""
    networks, names = [], []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError:
            if not HOST_NAME.fullmatch(part) or part.replace(".", "").isdigit():
                problem = f"{part!r} is not an address, a CIDR network or a host name"
                raise ValueError(problem) from None
            names.append(part)
    return ProxyAddresses(tuple(networks), tuple(names))


def resolve(names: Sequence[str]) -> frozenset[str]:
    """The addresses the names have now (none for a name that does not resolve)."""
    found: set[str] = set()
    for name in names:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return frozenset(found)


class TrustedProxies:
    """Hands a request to ``ProxyFix`` (``hops`` proxies deep) when its peer is a trusted
    proxy, and untouched to the app otherwise."""

    def __init__(self, wsgi_app: WSGIApplication, addresses: ProxyAddresses, hops: int) -> None:
        self.direct = wsgi_app
        self.proxied = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        self.names = addresses.names
        self.resolved = resolve(self.names)
        self._watching_in: int | None = None
        networks = addresses.networks

        @lru_cache(maxsize=1024)
        def in_networks(address: str) -> bool:
            try:
                peer = ipaddress.ip_address(address)
            except ValueError:
                return False
            return any(peer in network for network in networks)

        self._in_networks = in_networks

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.names and self._watching_in != os.getpid():
            self._watch_names()
        peer = environ.get("REMOTE_ADDR") or ""
        if peer in self.resolved or self._in_networks(peer):
            return self.proxied(environ, start_response)
        return self.direct(environ, start_response)

    def _watch_names(self) -> None:
        # Once per process: a forked server worker inherits no thread.
        self._watching_in = os.getpid()
        threading.Thread(target=self._resolve_forever, name="proxy-names", daemon=True).start()

    def _resolve_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(RESOLVE_EVERY_SECONDS):
            self.resolved = resolve(self.names)
