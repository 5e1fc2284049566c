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
    authenticated: bool = False  # credentials were presented and verified
    unrestricted: bool = False  # mode none: nobody is authenticated, and everybody sees everything

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles

    @property
    def is_deployer(self) -> bool:
        return DEPLOYER in self.roles

    @property
    def sees_everything(self) -> bool:
        """Operators, and everybody when the gateway authenticates nobody."""
        return self.is_operator or self.unrestricted

    @property
    def known(self) -> bool:
        """Whether the request may do what needs an identity (always, in mode none)."""
        return self.authenticated or self.unrestricted


NOBODY = Identity(unrestricted=True)  # mode none: anonymous, seeing everything, as before identities
LOCAL_OPERATOR = Identity(unrestricted=True, roles=frozenset({USER, OPERATOR}))  # mode none, from loopback
ANONYMOUS = Identity()  # another mode, and no credentials: the public catalogue only


def identity_of(request: Request | None) -> Identity:
    """The identity the WSGI app established for ``request`` (``NOBODY`` outside a request)."""
    if request is None:
        return NOBODY
    return request.environ.get(ENVIRON_KEY, NOBODY)


class IdentityRequired(Exception):
    """What was asked needs an identity (401) or a role (403) the request does not have."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


def require(request: Request | None, role: str | None = None) -> Identity:
    """The request's identity, if it may do what needs one (and ``role``); IdentityRequired otherwise."""
    identity = identity_of(request)
    if not identity.known:
        raise IdentityRequired("this needs credentials: Authorization: Bearer <token or API key>")
    if role is not None and role not in identity.roles:
        raise IdentityRequired(f"this needs the {role} role", status=403)
    return identity
