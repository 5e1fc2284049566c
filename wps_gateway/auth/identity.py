"""The identity a request acts as, and the roles that come with it.

Every request gets one (``identity_of``): with ``[auth] mode = none`` it is
``anonymous`` with every role, so nothing changes for a gateway without
authentication; in the other modes it comes from a trusted proxy's headers,
an OIDC bearer token or an API key (``wps_gateway.auth.authenticate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.wrappers import Request

ENVIRON_KEY = "wps_gateway.identity"
USER, OPERATOR, DEPLOYER = "user", "operator", "deployer"


@dataclass(frozen=True)
class Identity:
    user: str = "anonymous"
    groups: tuple[str, ...] = ()
    roles: frozenset[str] = field(default_factory=lambda: frozenset({USER}))
    group: str = ""  # the group this request acts for: the one it names, or the user's first
    authenticated: bool = False  # False only in mode none: then everybody sees everything

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles

    @property
    def is_deployer(self) -> bool:
        return DEPLOYER in self.roles

    @property
    def sees_everything(self) -> bool:
        """Operators, and everybody when the gateway authenticates nobody."""
        return self.is_operator or not self.authenticated


NOBODY = Identity()  # mode none: anonymous, and (not authenticated) seeing everything, as before


def identity_of(request: Request | None) -> Identity:
    """The identity the WSGI app established for ``request`` (``NOBODY`` outside a request)."""
    if request is None:
        return NOBODY
    return request.environ.get(ENVIRON_KEY, NOBODY)
