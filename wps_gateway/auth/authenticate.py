"""From a request to an ``Identity``: a trusted proxy's headers, an OIDC bearer token, an API key.

``Authenticator.identify`` never fails for a request without credentials (it
is then anonymous, and endpoints that need an identity say 401); it fails
with ``AuthenticationFailed`` (401, with ``WWW-Authenticate``) for
credentials that are presented and wrong, and with ``AuthorizationFailed``
(403) for a group the user is not in. Nothing of a token reaches a log or an
answer: errors say what is wrong with it, not what it is.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from werkzeug.wrappers import Request

from ..deployment import NotAuthorized
from ..deployment import authenticate as deploy_token_holder
from ..store.db import Store
from . import apikeys
from .identity import ANONYMOUS, DEPLOYER, LOCAL_OPERATOR, NOBODY, OPERATOR, USER, Identity
from .settings import AuthSettings

LOG = logging.getLogger(__name__)
JWKS_LIFESPAN = 300  # seconds a fetched key set is kept (an unknown key id fetches it again at once)
JWKS_TIMEOUT = 5


class AuthenticationFailed(Exception):
    """Credentials were presented and are not good: 401."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge  # the WWW-Authenticate header


class AuthorizationFailed(Exception):
    """The identity is good but may not do this (a group it is not in): 403."""


class KeysUnavailable(Exception):
    """The identity provider's keys cannot be fetched now: 503."""


class Authenticator:
    def __init__(self, settings: AuthSettings, store: Store, deploy_tokens: dict[str, bytes]) -> None:
        self.settings = settings
        self.store = store
        self.deploy_tokens = deploy_tokens
        self._jwks_client = (jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=JWKS_LIFESPAN,
                                             timeout=JWKS_TIMEOUT, cooldown_duration=settings.oidc_jwks_cooldown)
                             if settings.mode == "oidc" and settings.oidc_jwks_url else None)
        self._jwks_file = (jwt.PyJWKSet.from_dict(json.loads(Path(settings.oidc_jwks_file).read_text()))
                           if settings.mode == "oidc" and settings.oidc_jwks_file else None)

    @property
    def challenge(self) -> str:
        return 'Bearer realm="wps-gateway"'

    def identify(self, request: Request) -> Identity:
        authorization = request.headers.get("Authorization", "")
        deployer = self._deploy_token_holder(authorization)
        if self.settings.mode == "none":
            if deployer:
                return self._identity(deployer, (), unrestricted=True, deployer=True)
            return LOCAL_OPERATOR if _loopback(request.remote_addr) else NOBODY
        if deployer:
            return self._identity(deployer, (), request, deployer=True)
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        api_key = request.headers.get("X-API-Key", "").strip() or (
            credential if scheme.lower() == "bearer" and apikeys.looks_like_key(credential) else "")
        if api_key:
            holder = apikeys.holder_of(self.store, api_key)
            if holder is None:
                raise AuthenticationFailed("the API key is unknown or revoked",
                                           f'{self.challenge}, error="invalid_token"')
            return self._identity(holder.user, holder.groups, request)
        if self.settings.mode == "header":
            return self._from_proxy(request)
        if scheme.lower() == "bearer" and credential:
            return self._from_token(credential, request)
        if authorization:
            raise AuthenticationFailed("use Authorization: Bearer <token>", self.challenge)
        return ANONYMOUS

    def _deploy_token_holder(self, authorization: str) -> str | None:
        if not self.deploy_tokens or not authorization:
            return None
        try:
            return deploy_token_holder(authorization, self.deploy_tokens)
        except NotAuthorized:
            return None

    def _from_proxy(self, request: Request) -> Identity:
        settings = self.settings
        user = request.headers.get(settings.user_header, "").strip()
        groups = request.headers.get(settings.groups_header, "")
        if not user and not groups:
            return ANONYMOUS
        if not _trusted(request.remote_addr, settings):
            LOG.warning("identity headers from %s refused: not a trusted proxy", request.remote_addr)
            raise AuthenticationFailed(f"identity headers are accepted only from the trusted proxies, not from "
                                       f"{request.remote_addr}", 'Basic realm="wps-gateway"')
        if not user:
            raise AuthenticationFailed(f"{settings.groups_header} without {settings.user_header}",
                                       'Basic realm="wps-gateway"')
        return self._identity(user, tuple(g.strip() for g in groups.split(",") if g.strip()), request)

    def _from_token(self, token: str, request: Request) -> Identity:
        settings = self.settings
        try:
            key = self._signing_key(token)
            claims = jwt.decode(token, key, algorithms=list(settings.oidc_algorithms),
                                audience=settings.oidc_audience, issuer=settings.oidc_issuer,
                                leeway=settings.oidc_leeway,
                                options={"require": ["exp", "iss", "aud"], "verify_nbf": True})
        except jwt.ExpiredSignatureError:
            raise self._invalid("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise self._invalid("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise self._invalid("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise self._invalid("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise self._invalid("the token's signature does not verify") from None
        except jwt.PyJWKClientConnectionError:
            raise KeysUnavailable("the identity provider's keys cannot be fetched now") from None
        except (jwt.PyJWKClientError, jwt.PyJWKError):
            raise self._invalid("the token names a key the identity provider does not have") from None
        except jwt.InvalidTokenError as exc:
            raise self._invalid(f"the token is not valid: {type(exc).__name__}") from None
        user = claims.get(settings.oidc_user_claim)
        if not isinstance(user, str) or not user.strip():
            raise self._invalid(f"the token has no {settings.oidc_user_claim} claim")
        return self._identity(user.strip(), _groups(claims.get(settings.oidc_groups_claim)), request)

    def _signing_key(self, token: str) -> Any:
        if self._jwks_client is not None:
            return self._jwks_client.get_signing_key_from_jwt(token).key
        assert self._jwks_file is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks_file.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.PyJWKClientError("unknown key id")

    def _invalid(self, message: str) -> AuthenticationFailed:
        return AuthenticationFailed(message, f'{self.challenge}, error="invalid_token", '
                                             f'error_description="{message}"')

    def _identity(self, user: str, groups: tuple[str, ...], request: Request | None = None, *,
                  deployer: bool = False, unrestricted: bool = False) -> Identity:
        settings = self.settings
        roles = {USER}
        if settings.operators.include(user, groups):
            roles.add(OPERATOR)
        if deployer or settings.deployers.include(user, groups):
            roles.add(DEPLOYER)
        return Identity(user=user, groups=groups, roles=frozenset(roles), group=self._group(request, groups),
                        authenticated=True, unrestricted=unrestricted)

    def _group(self, request: Request | None, groups: tuple[str, ...]) -> str:
        """The group a request acts for: the one it names (header or ``group`` parameter), else the first."""
        named = ""
        if request is not None:
            named = (request.headers.get(self.settings.group_header) or request.args.get("group") or "").strip()
        if named and named not in groups:
            raise AuthorizationFailed(f"you are not in group {named!r}")
        return named or (groups[0] if groups else "")


def _trusted(address: str | None, settings: AuthSettings) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in settings.trusted_proxies)


@lru_cache(maxsize=1024)  # every request asks; parsing the address was most of identifying it
def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(g.strip() for g in value.split(",") if g.strip())
    if isinstance(value, list):
        return tuple(str(g).strip() for g in value if str(g).strip())
    return ()
