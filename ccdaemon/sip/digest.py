"""HTTP Digest authentication on the SIP client side (RFC 3261 §22, RFC 7616, RFC 8760).

A 401 carries ``WWW-Authenticate`` and is answered with ``Authorization``; a 407 carries
``Proxy-Authenticate`` and is answered with ``Proxy-Authorization``.  Everything here is
sans-I/O: the cnonce is an argument and no clock or random source is read.

Supported: MD5, MD5-sess, SHA-256, SHA-256-sess and SHA-512-256(-sess) when the local OpenSSL
has it; qop=auth, qop=auth-int (over the body) and the RFC 2069 form without qop for old
servers; userhash (RFC 7616 §3.4.4).  Strings are hashed as UTF-8, SIP's native charset.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from ccdaemon.sip.errors import LocalProtocolError, ParseError, SipError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthenticationError",
    "Challenge",
    "Credentials",
    "DigestClient",
    "build_response",
    "header_name",
    "parse_authorization",
    "parse_challenge",
    "parse_challenges",
    "select_challenge",
    "verify_authorization",
]


class AuthenticationError(SipError):
    """A challenge these credentials cannot answer (foreign realm, unsupported algorithm or qop)."""


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:  # not built into this OpenSSL (or forbidden by FIPS mode)
        return False
    return True


# Base algorithm -> (hashlib name, preference rank).  RFC 8760 §2.4: prefer SHA-256 over MD5.
_BASES: Final[dict[str, tuple[str, int]]] = {
    "MD5": ("md5", 1),
    "SHA-256": ("sha256", 2),
    "SHA-512-256": ("sha512_256", 3),
}
_SESS: Final = "-sess"
# Lower-case spelling -> canonical spelling, so "md5" from a sloppy server is still understood.
_CANONICAL: Final[dict[str, str]] = {name.lower(): name for base in _BASES for name in (base, base + _SESS)}
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset(
    name for name in _CANONICAL.values() if _hash_available(_BASES[name.removesuffix(_SESS)][0])
)
_QOPS: Final = ("auth", "auth-int")  # order = our preference: auth-int only when auth is not offered
_MAX_STALE_RETRIES: Final = 2  # a server answering every attempt with stale=true must not loop us
_MAX_ENTRIES: Final = 64  # bounds per-realm/per-nonce state; realms and nonces come from the network

# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenge."""

    scheme: str
    """``"Digest"`` (canonical spelling) or the foreign scheme as sent."""
    realm: str
    """Unquoted realm; echoed verbatim and hashed into A1."""
    nonce: str
    algorithm: str = "MD5"
    """Canonical spelling for known algorithms (``"SHA-256-sess"``), else the token as sent."""
    qop: tuple[str, ...] = ()
    """Offered qop values, lower-cased; empty means the RFC 2069 form."""
    opaque: str | None = None
    stale: bool = False
    """The previous credentials were right but the nonce expired: retry without asking anyone."""
    userhash: bool = False
    proxy: bool = False
    """True when it came from Proxy-Authenticate (a 407)."""

    @property
    def is_supported(self) -> bool:
        """Whether a :class:`DigestClient` can answer it (scheme, algorithm and qop)."""
        return (
            self.scheme == "Digest"
            and self.algorithm in SUPPORTED_ALGORITHMS
            and (not self.qop or _choose_qop(self.qop) is not None)
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password, optionally tied to one realm."""

    username: str
    password: str = field(repr=False)  # never in repr: reprs end up in logs and tracebacks
    realm: str | None = None
    """Only answer challenges of this realm; ``None`` answers any realm."""

    def matches(self, realm: str) -> bool:
        return self.realm is None or self.realm == realm


def header_name(proxy: bool) -> str:
    """The request header answering a challenge: Proxy-Authorization for 407, else Authorization."""
    return "Proxy-Authorization" if proxy else "Authorization"


# ---------------------------------------------------------------------------------------------
# Parsing (RFC 7235 §2.1 auth-param lists, RFC 3261 §25.1 quoted-string)

_TCHAR: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS: Final = frozenset(" \t\r\n")  # CR/LF too: a folded header (LWS) may reach us unfolded or not
# Unquoted values are tokens by the grammar, but servers send base64 nonces bare; accept any
# visible ASCII except the characters that delimit the list.
_BARE_EXCLUDED: Final = frozenset('",\\')


def _is_ctl(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char != "\t") or code == 0x7F


class _Scanner:
    """Cursor over one header value; every failure is a ParseError naming the offset."""

    __slots__ = ("pos", "text", "what")

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.pos = 0
        self.what = what

    def error(self, problem: str) -> ParseError:
        return ParseError(f"malformed {self.what}: {problem} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_ws(self) -> bool:
        start = self.pos
        while self.peek() in _WS:
            self.pos += 1
        return self.pos > start

    def skip_separators(self) -> bool:
        """Skip whitespace and empty list elements (``, ,``); True when a comma was passed."""
        comma = False
        while True:
            self.skip_ws()
            if self.peek() != ",":
                return comma
            self.pos += 1
            comma = True

    def token(self, what: str) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] in _TCHAR:
            self.pos += 1
        if self.pos == start:
            raise self.error(f"expected {what}")
        return self.text[start : self.pos]

    def value(self, name: str) -> str:
        if self.peek() == '"':
            return self.quoted()
        start = self.pos
        while not self.at_end() and _is_bare(self.text[self.pos]):
            self.pos += 1
        if self.pos == start or self.text[start] == "=":  # "x==" is token68, not x="="
            raise self.error(f"missing value for {name!r}")
        return self.text[start : self.pos]

    def quoted(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                if self.at_end():
                    break
                char = self.text[self.pos]
                self.pos += 1
            if _is_ctl(char):
                self.pos -= 1
                raise self.error("control character in quoted-string")
            out.append(char)
        raise self.error("unterminated quoted-string")


def _is_bare(char: str) -> bool:
    return "!" <= char <= "~" and char not in _BARE_EXCLUDED


_RawAuth = tuple[str, dict[str, str]]  # (scheme, lower-cased param name -> unquoted value)


def _parse_auth_list(text: str, what: str) -> list[_RawAuth]:
    """Split a header value into ``scheme #auth-param`` items (RFC 7235 allows several)."""
    scanner = _Scanner(text, what)
    items: list[_RawAuth] = []
    scanner.skip_separators()
    while not scanner.at_end():
        scheme = scanner.token("auth scheme")
        if not scanner.skip_ws() and scanner.peek() not in ("", ","):
            raise scanner.error(f"expected whitespace after scheme {scheme!r}")
        items.append((scheme, _parse_params(scanner)))
        scanner.skip_separators()
    return items


def _parse_params(scanner: _Scanner) -> dict[str, str]:
    """Read ``name=value`` items up to the end or up to the scheme of the next challenge."""
    params: dict[str, str] = {}
    after_comma = scanner.skip_separators()
    while not scanner.at_end():
        mark = scanner.pos
        name = scanner.token("parameter name")
        scanner.skip_ws()
        if scanner.peek() != "=":
            if not after_comma:  # right after the scheme: token68 form, which Digest never uses
                raise scanner.error(f"expected '=' after {name!r}")
            scanner.pos = mark  # a bare token after a comma starts the next challenge
            break
        scanner.pos += 1
        scanner.skip_ws()
        key = name.lower()
        if key in params:  # RFC 7235 §2.1: each parameter name only once
            raise scanner.error(f"duplicate parameter {name!r}")
        params[key] = scanner.value(name)
        scanner.skip_ws()
        if not scanner.at_end() and scanner.peek() != ",":
            raise scanner.error(f"expected ',' after parameter {name!r}")
        after_comma = scanner.skip_separators()
    return params


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "").lower() == "true"


def _to_challenge(scheme: str, params: Mapping[str, str], proxy: bool) -> Challenge:
    if scheme.lower() != "digest":
        # Kept (not rejected) so select_challenge can skip it alongside a Digest offer.
        return Challenge(scheme=scheme, realm=params.get("realm", ""), nonce="", proxy=proxy)
    for required in ("realm", "nonce"):
        if required not in params:
            raise ParseError(f"Digest challenge without {required}")
    algorithm = params.get("algorithm", "MD5")
    return Challenge(
        scheme="Digest",
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_CANONICAL.get(algorithm.lower(), algorithm),
        qop=tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()),
        opaque=params.get("opaque"),
        stale=_flag(params, "stale"),
        userhash=_flag(params, "userhash"),
        proxy=proxy,
    )


def parse_challenges(value: str, *, proxy: bool = False) -> list[Challenge]:
    """Every challenge in one header value (usually one in SIP, several are legal in HTTP)."""
    items = _parse_auth_list(value, "challenge")
    if not items:
        raise ParseError("empty authentication challenge")
    return [_to_challenge(scheme, params, proxy) for scheme, params in items]


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge:
    """Parse one WWW-Authenticate (``proxy=False``) or Proxy-Authenticate header value."""
    challenges = parse_challenges(value, proxy=proxy)
    if len(challenges) > 1:
        raise ParseError(f"header value holds {len(challenges)} challenges; use select_challenge")
    return challenges[0]


def select_challenge(values: Sequence[str], *, proxy: bool = False, realm: str | None = None) -> Challenge:
    """Pick the challenge to answer among several header values.

    Unparseable values, other schemes and unsupported algorithms or qops are skipped (one bad
    offer must not hide a good one).  The strongest hash wins (RFC 8760 §2.4); on a tie the
    server's order decides.  ``realm`` restricts the choice to credentials bound to one realm.
    """
    usable: list[Challenge] = []
    problems: list[str] = []
    for value in values:
        try:
            found = parse_challenges(value, proxy=proxy)
        except ParseError as exc:
            problems.append(str(exc))
            continue
        for challenge in found:
            if not challenge.is_supported:
                problems.append(f"unsupported {challenge.scheme} {challenge.algorithm} qop={challenge.qop}")
            elif realm is not None and challenge.realm != realm:
                problems.append(f"foreign realm {challenge.realm!r}")
            else:
                usable.append(challenge)
    if not usable:
        raise ParseError("no usable Digest challenge: " + ("; ".join(problems) or "no challenge"))
    return max(usable, key=lambda c: _BASES[c.algorithm.removesuffix(_SESS)][1])  # first of the best


def parse_authorization(value: str) -> dict[str, str]:
    """Parse an Authorization / Proxy-Authorization value into lower-cased, unquoted params."""
    items = _parse_auth_list(value, "authorization")
    if len(items) != 1:
        raise ParseError(f"expected one set of credentials, found {len(items)}")
    scheme, params = items[0]
    if scheme.lower() != "digest":
        raise ParseError(f"unsupported authorization scheme {scheme!r}")
    return params


# ---------------------------------------------------------------------------------------------
# Hashing (RFC 7616 §3.4)


def _algorithm_parts(algorithm: str) -> tuple[str, bool]:
    """(hashlib name, is -sess) for a supported algorithm name in any letter case."""
    canonical = _CANONICAL.get(algorithm.lower())
    if canonical is None or canonical not in SUPPORTED_ALGORITHMS:
        raise AuthenticationError(f"unsupported digest algorithm {algorithm!r}")
    return _BASES[canonical.removesuffix(_SESS)][0], canonical.endswith(_SESS)


def _h(hash_name: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.new(hash_name, raw).hexdigest()


def build_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value: KD(H(A1), nonce:nc:cnonce:qop:H(A2)), or KD(H(A1), nonce:H(A2))
    without qop (RFC 2069).  ``username`` is the plain one even when userhash is in use."""
    hash_name, sess = _algorithm_parts(algorithm)
    ha1 = _h(hash_name, f"{username}:{realm}:{password}")
    if sess:
        if not cnonce:
            raise LocalProtocolError(f"{algorithm} needs a cnonce")
        ha1 = _h(hash_name, f"{ha1}:{nonce}:{cnonce}")
    if qop is not None and qop not in _QOPS:
        raise AuthenticationError(f"unsupported qop {qop!r}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + _h(hash_name, body)
    ha2 = _h(hash_name, a2)
    if qop is None:
        return _h(hash_name, f"{ha1}:{nonce}:{ha2}")
    if not nc or not cnonce:
        raise LocalProtocolError(f"qop={qop} needs nc and cnonce")
    return _h(hash_name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _userhash(algorithm: str, username: str, realm: str) -> str:
    hash_name, _ = _algorithm_parts(algorithm)  # -sess does not apply to the userhash
    return _h(hash_name, f"{username}:{realm}")


def _missing_fields(params: Mapping[str, str]) -> list[str]:
    missing = [name for name in ("realm", "nonce", "uri", "response", "username") if name not in params]
    # nc and cnonce only enter the hash with qop (cnonce also with -sess); empty counts as absent.
    sess = params.get("algorithm", "").lower().endswith(_SESS)
    needed = ("nc", "cnonce") if "qop" in params else ("cnonce",) if sess else ()
    return missing + [name for name in needed if not params.get(name)]


def verify_authorization(
    params: Mapping[str, str], *, username: str, password: str, method: str, body: bytes = b""
) -> bool:
    """Server-side check of parsed credentials (tests today, a registrar tomorrow).

    Checks the username (hashed when ``userhash=true``) and the response; nonce freshness and nc
    replay are the caller's business.  Raises ParseError for incomplete credentials and
    AuthenticationError for an algorithm or qop we do not implement.
    """
    missing = _missing_fields(params)
    if missing:
        raise ParseError(f"authorization lacks {', '.join(missing)}")
    algorithm = params.get("algorithm", "MD5")
    realm = params["realm"]
    expected_user = _userhash(algorithm, username, realm) if _flag(params, "userhash") else username
    expected = build_response(
        algorithm=algorithm,
        username=username,
        password=password,
        realm=realm,
        nonce=params["nonce"],
        method=method,
        uri=params["uri"],
        qop=params.get("qop"),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        body=body,
    )
    # compare_digest on bytes: str input must be ASCII, and the peer's value may not be.
    user_ok = hmac.compare_digest(params["username"].encode(), expected_user.encode())
    return user_ok and hmac.compare_digest(params["response"].encode(), expected.encode())


# ---------------------------------------------------------------------------------------------
# Formatting


def _quote(value: str) -> str:
    if any(_is_ctl(char) for char in value):  # CR/LF here would inject a header
        raise LocalProtocolError("control character in a digest parameter")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _choose_qop(offered: Sequence[str]) -> str | None:
    return next((qop for qop in _QOPS if qop in offered), None)


def _format_credentials(params: Sequence[tuple[str, str | None, bool]]) -> str:
    """``Digest a="x", b=y``: (name, value, quoted) triples, ``None`` values left out."""
    parts = [
        f"{name}={_quote(value) if quoted else value}" for name, value, quoted in params if value is not None
    ]
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Client state

_K = TypeVar("_K")
_V = TypeVar("_V")


def _put_bounded(table: dict[_K, _V], key: _K, value: _V) -> None:
    """Insert as newest entry and drop the oldest beyond _MAX_ENTRIES (dicts keep order)."""
    table.pop(key, None)
    table[key] = value
    while len(table) > _MAX_ENTRIES:
        del table[next(iter(table))]


@dataclass(slots=True)
class _NonceUse:
    count: int = 0
    session_cnonce: str | None = None
    """-sess only: the cnonce of the first answer, which A1 keeps for the nonce's lifetime."""


_RealmKey = tuple[bool, str]  # (proxy, realm): a proxy and a registrar may share a realm name


class DigestClient:
    """Answers challenges for one set of credentials.

    Keeps per-(realm, nonce) nonce counts so a reused nonce gets nc=00000002, ...; remembers the
    last challenge per realm for pre-emptive auth of later requests.
    """

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._uses: dict[tuple[str, str], _NonceUse] = {}
        self._last: dict[_RealmKey, Challenge] = {}
        self._stale_retries: dict[_RealmKey, int] = {}

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def can_answer(self, challenge: Challenge) -> bool:
        return challenge.is_supported and self._credentials.matches(challenge.realm)

    def authorize(
        self, challenge: Challenge, *, method: str, uri: str, cnonce: str, body: bytes = b""
    ) -> tuple[str, str]:
        """(header name, header value) answering ``challenge`` for a request ``method uri``.

        With a -sess algorithm the cnonce of the first answer to a nonce is reused for later
        answers to it, so servers that cache the session key and servers that recompute it from
        the request both agree with us.
        """
        if not self.can_answer(challenge):
            raise AuthenticationError(
                f"cannot answer {challenge.scheme} {challenge.algorithm} challenge "
                f"qop={challenge.qop} for realm {challenge.realm!r}"
            )
        qop = _choose_qop(challenge.qop)
        _, sess = _algorithm_parts(challenge.algorithm)
        if (qop is not None or sess) and not cnonce:
            raise LocalProtocolError("an empty cnonce cannot answer this challenge")
        nc, cnonce_used = self._next_use(challenge, cnonce, counted=qop is not None, sess=sess)
        value = self._credentials_value(
            challenge, method=method, uri=uri, qop=qop, nc=nc, cnonce=cnonce_used, body=body
        )
        _put_bounded(self._last, (challenge.proxy, challenge.realm), challenge)
        return header_name(challenge.proxy), value

    def should_retry(self, challenge: Challenge, *, previous_failed: bool) -> bool:
        """Whether to resend the request with credentials for this challenge.

        ``previous_failed``: the request that drew this challenge already carried our answer to
        a challenge of this realm (a rejected pre-emptive attempt does not count).  Rule: the
        first challenge of a request is answered once; after a rejection we only retry when the
        server says stale=true with a nonce we have not answered yet (the password was right,
        the nonce had expired), at most _MAX_STALE_RETRIES times in a row.  Anything else means
        wrong credentials: give up, and forget the realm so pre-emptive auth stops using them.
        """
        key = (challenge.proxy, challenge.realm)
        if not self.can_answer(challenge):
            return False
        if not previous_failed:
            self._stale_retries.pop(key, None)
            return True
        last = self._last.get(key)
        fresh_stale = challenge.stale and (last is None or last.nonce != challenge.nonce)
        streak = self._stale_retries.get(key, 0)
        if fresh_stale and streak < _MAX_STALE_RETRIES:
            _put_bounded(self._stale_retries, key, streak + 1)
            return True
        self._forget(key)
        return False

    def preemptive(
        self, *, method: str, uri: str, cnonce: str, body: bytes = b"", realm: str | None = None
    ) -> tuple[str, str] | None:
        """Answer the most recent challenge again (nc+1) before being asked, or None.

        ``realm`` picks a realm's challenge; by default the newest of any realm is used.
        """
        for (_, seen_realm), challenge in reversed(self._last.items()):
            if realm is None or seen_realm == realm:
                return self.authorize(challenge, method=method, uri=uri, cnonce=cnonce, body=body)
        return None

    def _next_use(
        self, challenge: Challenge, cnonce: str, *, counted: bool, sess: bool
    ) -> tuple[str | None, str | None]:
        """(nc, cnonce to send) for the next answer to this nonce, counting it."""
        if not counted and not sess:
            return None, None  # RFC 2069 form: neither nc nor cnonce
        key = (challenge.realm, challenge.nonce)
        use = self._uses.get(key)
        if use is None:
            use = _NonceUse(session_cnonce=cnonce if sess else None)
            _put_bounded(self._uses, key, use)
        use.count += 1
        nc = f"{use.count:08x}" if counted else None
        return nc, use.session_cnonce or cnonce

    def _credentials_value(
        self,
        challenge: Challenge,
        *,
        method: str,
        uri: str,
        qop: str | None,
        nc: str | None,
        cnonce: str | None,
        body: bytes,
    ) -> str:
        creds = self._credentials
        response = build_response(
            algorithm=challenge.algorithm,
            username=creds.username,
            password=creds.password,
            realm=challenge.realm,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        username = (
            _userhash(challenge.algorithm, creds.username, challenge.realm)
            if challenge.userhash
            else creds.username
        )
        return _format_credentials(
            [
                ("username", username, True),
                ("realm", challenge.realm, True),
                ("nonce", challenge.nonce, True),
                ("uri", uri, True),
                ("response", response, True),
                ("algorithm", challenge.algorithm, False),  # always echoed (RFC 7616 §3.4)
                ("cnonce", cnonce, True),
                ("opaque", challenge.opaque, True),
                ("qop", qop, False),
                ("nc", nc, False),
                ("userhash", "true" if challenge.userhash else None, False),
            ]
        )

    def _forget(self, key: _RealmKey) -> None:
        # The stale streak stays: it is what keeps an endless stale=true server from looping us.
        self._last.pop(key, None)
