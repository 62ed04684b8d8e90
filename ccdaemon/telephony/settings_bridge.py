"""Turn the daemon's validated settings into the user agent's plain configuration.

Keeping this mapping in one place lets ``telephony/`` stay independent of pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sip.transaction import SipTimers
from .useragent import UaConfig

if TYPE_CHECKING:
    from ..config import Settings


def ua_config_from_settings(settings: Settings) -> UaConfig:
    sip, pbx, security, media = settings.sip, settings.pbx, settings.security, settings.media
    return UaConfig(
        pbx_host=pbx.host,
        pbx_port=pbx.port,
        pbx_transport=pbx.transport,
        domain=pbx.domain or None,
        username=pbx.username,
        auth_username=pbx.auth_username or None,
        password=pbx.password.get_secret_value(),
        listen_host=sip.listen_host,
        listen_port=sip.listen_port,
        transports=tuple(sip.transports),
        contact_host=sip.contact_host,
        user_agent=sip.user_agent,
        register=pbx.register,
        register_expires=pbx.register_expires,
        register_retry_min=pbx.register_retry_min,
        register_retry_max=pbx.register_retry_max,
        keepalive_interval=pbx.keepalive_interval,
        outbound_proxy=pbx.outbound_proxy,
        allowed_sources=tuple(str(n) for n in security.allowed_sources),
        unknown_source_policy=security.unknown_source_policy,
        max_transactions_per_peer=security.max_transactions_per_peer,
        max_calls=security.max_calls,
        rtp_port_min=media.rtp_port_min,
        rtp_port_max=media.rtp_port_max,
        codecs=tuple(media.codecs),
        symmetric_rtp=media.symmetric_rtp,
        overload_lateness=media.overload_lateness_ms / 1000,
        ptime=media.ptime,
        timers=SipTimers(t1=sip.t1, t2=sip.t2, t4=sip.t4),
    )
