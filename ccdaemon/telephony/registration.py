"""Registration of the queue line with the PBX (RFC 3261 §10): register, refresh, recover, unregister.

Refreshes happen well before expiry; errors and PBX restarts lead to re-registration with
exponential back-off and jitter; credentials the PBX rejects produce one clear error naming the
account and a long pause instead of a tight retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip.headers import Headers
from ..sip.message import SipRequest, SipResponse
from ..sip.uri import SipUri

if TYPE_CHECKING:
    from .sip_endpoint import ClientTransaction
    from .useragent import UserAgent

log = logging.getLogger(__name__)


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    RETRYING = "retrying"  # the last attempt failed; another follows after a back-off
    AUTH_FAILED = "auth_failed"  # the PBX refused our credentials
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    state: RegistrationState
    expires_in: int | None = None  # seconds the PBX granted, when registered
    last_status: int | None = None  # last SIP status seen
    detail: str = ""


def refresh_delay(granted: int) -> float:
    """Re-register at half the granted time, but never closer than 5 s to expiry."""
    return max(1.0, min(granted / 2, granted - 5))


def _retry_after(response: SipResponse) -> float:
    """Seconds a 5xx asks us to wait (Retry-After), capped at an hour; 0 when absent."""
    value = (response.headers.get("Retry-After") or "").split(";")[0].split("(")[0].strip()
    return float(min(int(value), 3600)) if value.isascii() and value.isdigit() else 0.0


def backoff_delay(failures: int, low: float, high: float, rng: random.Random) -> float:
    """Exponential back-off from ``low`` doubling to ``high``, with ±20 % jitter so many daemons
    restarting together do not hammer the PBX in lock-step."""
    base = min(high, low * 2.0 ** max(0, failures - 1))
    jitter: float = rng.uniform(0.8, 1.2)
    return base * jitter


class Registration:
    def __init__(
        self,
        ua: UserAgent,
        *,
        expires: int,
        retry_min: float,
        retry_max: float,
        on_change: Callable[[RegistrationStatus], None] | None = None,
    ) -> None:
        self._ua = ua
        self._expires = expires
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._on_change = on_change
        self._call_id = ua.ids.call_id()
        self._from_tag = ua.ids.tag()
        self._cseq = 0
        self._rng = random.Random()
        self.status = RegistrationStatus(RegistrationState.UNREGISTERED)
        self.registered = asyncio.Event()
        self.bound = False  # the PBX may hold a binding of ours (so stop() must unregister)
        self._wake = asyncio.Event()

    @property
    def state(self) -> RegistrationState:
        return self.status.state

    def _set(self, status: RegistrationStatus) -> None:
        changed = status.state is not self.status.state
        self.status = status
        if status.state is RegistrationState.REGISTERED:
            self.registered.set()
        else:
            self.registered.clear()
        if changed:
            log.info("registration %s: %s %s", self._ua.aor, status.state.value, status.detail)
        if self._on_change is not None:
            self._on_change(status)

    def refresh_now(self) -> None:
        """Register again at once (e.g. the PBX was seen restarting)."""
        self._wake.set()

    async def run(self) -> None:
        """Register and keep registered until cancelled; never returns on its own."""
        failures = 0
        while True:
            self._wake.clear()  # a refresh_now() from here on must not be lost
            self._set(RegistrationStatus(RegistrationState.REGISTERING, last_status=self.status.last_status))
            try:
                response = await self._send(self._expires)
            except Exception:  # a bug must not end registration for good
                log.exception("registration attempt failed")
                failures += 1
                await self._sleep(backoff_delay(failures, self._retry_min, self._retry_max, self._rng))
                continue
            granted = self._granted_expiry(response) if response.is_success else 0
            if response.is_success and granted > 0:
                failures = 0
                self.bound = True
                self._set(RegistrationStatus(RegistrationState.REGISTERED, granted, response.status))
                await self._sleep(refresh_delay(granted))
                continue
            failures += 1
            if response.status == 423 and self._take_min_expires(response):
                continue
            if response.status in (401, 407, 403, 404):
                await self._refused(response)
                continue
            delay = backoff_delay(failures, self._retry_min, self._retry_max, self._rng)
            delay = max(delay, _retry_after(response))
            self._set(
                RegistrationStatus(
                    RegistrationState.RETRYING,
                    None,
                    response.status,
                    f"{response.status} {response.reason}; retry in {delay:.0f} s",
                )
            )
            await self._sleep(delay)

    def _take_min_expires(self, response: SipResponse) -> bool:
        """423 Interval Too Brief: adopt the PBX's Min-Expires if it really is longer than ours."""
        minimum = (response.headers.get("Min-Expires") or "").strip()
        if minimum.isascii() and minimum.isdigit() and self._expires < int(minimum) <= 86_400:
            log.info("PBX %s wants registrations of at least %s s", self._ua.pbx, minimum)
            self._expires = int(minimum)
            return True
        return False  # a nonsensical 423 is treated as any other failure (back-off)

    async def _refused(self, response: SipResponse) -> None:
        """Credentials rejected (401/403/407) or account unknown (404): one ERROR, then a long wait."""
        what = "does not know" if response.status == 404 else "rejected the credentials of"
        log.error(
            "PBX %s %s account %s (%d %s); check [pbx] username and password. Next attempt in %.0f s.",
            self._ua.pbx,
            what,
            self._ua.aor,
            response.status,
            response.reason,
            self._retry_max,
        )
        self._set(
            RegistrationStatus(
                RegistrationState.AUTH_FAILED, None, response.status, f"{response.status} {response.reason}"
            )
        )
        await self._sleep(self._retry_max)

    async def keepalive(self, interval: float) -> None:
        """OPTIONS to the PBX every ``interval`` s; re-register at once when it answers again.

        A PBX that was unreachable may have restarted and forgotten us, and the back-off could
        otherwise keep us away for minutes after it is back.
        """
        reachable = True
        while True:
            await asyncio.sleep(interval)
            # any response at all (even 404 or 407) means the PBX is up
            if await self._ua.ping(self._ua.pbx_endpoint) is None:
                if reachable:
                    log.warning("PBX %s does not answer keepalive OPTIONS", self._ua.pbx)
                reachable = False
            elif not reachable:
                reachable = True
                log.info("PBX %s answers again: registering now", self._ua.pbx)
                self.refresh_now()

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def unregister(self, timeout: float = 4.0) -> None:
        """Remove our binding (Expires: 0); bounded so shutdown never hangs on a dead PBX.

        Call it after cancelling :meth:`run` and :meth:`keepalive`, so no refresh can follow it."""
        if self.bound or self.status.state is RegistrationState.REGISTERING:
            try:
                response = await asyncio.wait_for(self._send(0), timeout)
                if response.is_success:
                    self.bound = False
            except TimeoutError:
                log.warning("unregister from %s timed out", self._ua.pbx)
        self._set(RegistrationStatus(RegistrationState.STOPPED))

    async def _send(self, expires: int) -> SipResponse:
        self._cseq += 1
        request = self._build(expires)

        def sent(client: ClientTransaction) -> None:
            # record at once: a REGISTER cancelled mid-retry must not have its CSeq reused
            self._cseq = client.request.cseq.seq

        response, _ = await self._ua.send_with_auth(request, self._ua.pbx_endpoint, on_sent=sent)
        return response

    def _build(self, expires: int) -> SipRequest:
        ua = self._ua
        headers = Headers()
        ua.add_outbound_route(headers)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{ua.aor}>;tag={self._from_tag}")
        headers.add("To", f"<{ua.aor}>")
        headers.add("Call-ID", self._call_id)
        headers.add("CSeq", f"{self._cseq} REGISTER")
        headers.add("Contact", f"{ua.local_contact()};expires={expires}")
        headers.add("Expires", str(expires))
        headers.add("User-Agent", ua.user_agent)
        ua.add_capabilities(headers)
        return SipRequest("REGISTER", SipUri(host=ua.domain_host, port=ua.domain_port), headers)

    def _granted_expiry(self, response: SipResponse) -> int:
        """Our contact's expires in the 200 (the PBX may shorten it), else Expires, else ours."""
        ours = self._ua.local_contact_uri()
        for contact in response.contacts:
            if isinstance(contact.uri, SipUri) and contact.uri.same_as(ours):
                value = contact.param("expires")
                if value and value.isdigit():
                    return int(value)
        header = response.headers.get("Expires")
        if header and header.strip().isdigit():
            return int(header.strip())
        return self._expires
