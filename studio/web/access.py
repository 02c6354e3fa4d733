"""Who may use `ai-writer serve`: the token, and the checks that keep other web pages out.

The token (secrets.token_urlsafe) is printed once in the URL the command prints. The page
request carrying it as ?token= gets it back as an HttpOnly, SameSite=Strict cookie and is
redirected to the same page without it (out of the address bar); every later request (the
page, its scripts, the websocket) must carry that cookie or `Authorization: Bearer TOKEN`.

Two browser attacks on a local server are refused as well:
- another site's page opening the websocket (cross-site WebSocket hijacking): the websocket's
  Origin must be this server's own address, token or not;
- DNS rebinding (a name the attacker controls pointed at 127.0.0.1): on loopback without a token,
  the Host header must be a loopback address or `localhost`. With a token, any name may be used
  (a reverse proxy's): the attacker's page has no cookie for it.
"""

from __future__ import annotations

import ipaddress
import secrets

from aiohttp import hdrs, web

TOKEN_QUERY = "token"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_https(request: web.Request) -> bool:
    """HTTPS here, or at the reverse proxy in front (its X-Forwarded-Proto only picks ws:// or wss://
    and the cookie's Secure flag for the client that sent it: nothing to trust)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


class Access:
    """The rules for one server: token (None: none asked for) and whether it listens on loopback only."""

    def __init__(self, token: str | None, loopback: bool):
        self.token = token
        self.loopback = loopback
        self.port = 0  # set once listening: names the cookie (browsers share cookies across ports)

    @property
    def cookie_name(self) -> str:
        return f"ai_writer_token_{self.port}"

    def refusal(self, request: web.Request) -> str | None:
        """Why `request` is refused (one line), or None to let it through."""
        host = request.url.host or ""
        if self.loopback and self.token is None and not is_loopback(host):
            return (f"refused: this server answers to localhost / 127.0.0.1 only, not to the name {host!r} "
                    "(behind a proxy, start it with --token)")
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket" and not self.same_origin(request):
            return "refused: the websocket was opened by a page from another site"
        if self.token is not None and not self.has_token(request):
            return ("refused: a token is required; open the URL with ?token= that `ai-writer serve` printed "
                    "when it started")
        return None

    def same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get(hdrs.ORIGIN, "")
        scheme, _, rest = origin.partition("://")
        return scheme in ("http", "https") and rest.lower() == request.host.lower()

    def has_token(self, request: web.Request) -> bool:
        offered = [request.cookies.get(self.cookie_name, ""), request.query.get(TOKEN_QUERY, "")]
        authorization = request.headers.get(hdrs.AUTHORIZATION, "")
        if authorization.startswith("Bearer "):
            offered.append(authorization[len("Bearer "):])
        return any(secrets.compare_digest(o.encode(), self.token.encode()) for o in offered if o)

    def token_in_query(self, request: web.Request) -> bool:
        """The page was opened with ?token= (the printed URL): answer with the cookie and a clean URL."""
        return self.token is not None and TOKEN_QUERY in request.query

    def redirect_with_cookie(self, request: web.Request) -> web.Response:
        query = request.url.query.copy()
        query.popall(TOKEN_QUERY)
        response = web.Response(status=303, headers={hdrs.LOCATION: str(request.url.relative().with_query(query))})
        response.set_cookie(self.cookie_name, self.token, httponly=True, samesite="Strict", path="/",
                            secure=is_https(request))
        return response
