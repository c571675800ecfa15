"""PTB's HTTP transport on aiohttp rather than PTB's default, httpx.

aiohttp costs the bot much less CPU per request than httpx, PTB's own work included, and
requests are the biggest part of a chat turn (bench/README.md). The contract is PTB's
``BaseRequest``: PTB builds the request and reads the answer, we only move bytes and turn
aiohttp's errors into PTB's.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import certifi
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Telegram answers a send in well under a second, and in seconds when it is struggling. A
# request that timed out may still have been carried out (there is no idempotent send), so a
# read timeout is set long enough that a struggling Telegram rarely hits it.
READ_SECONDS = 10.0
CONNECT_SECONDS = 5.0


class NotSent(NetworkError):
    """The request never reached Telegram (no connection): sending it again cannot repeat it."""


class NoAnswer(TimedOut):
    """The request went out and no answer came back (a read timeout, a dropped connection):
    Telegram may have carried it out."""


class AiohttpRequest(BaseRequest):
    """One aiohttp session with at most ``connection_pool_size`` connections.

    Timeouts mean what they mean for PTB's HTTPXRequest, with two differences: aiohttp has no
    write timeout, so the whole request is bounded by the sum of the phases instead (the same
    worst case), and waiting for a pooled connection may take the pool and the connect
    timeout together.
    """

    def __init__(
        self,
        connection_pool_size: int = 8,
        read_timeout: float | None = READ_SECONDS,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = CONNECT_SECONDS,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ):
        self._pool_size = connection_pool_size
        self._defaults = {
            "read": read_timeout,
            "write": write_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
        }
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._defaults["read"]

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # certifi's CA bundle, as httpx uses: a slim image may have no system store.
            tls = ssl.create_default_context(cafile=certifi.where())
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ssl=tls),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=BaseRequest.DEFAULT_NONE,
        write_timeout=BaseRequest.DEFAULT_NONE,
        connect_timeout=BaseRequest.DEFAULT_NONE,
        pool_timeout=BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        if write_timeout is BaseRequest.DEFAULT_NONE:  # PTB's "not given"
            write_timeout = self._media_write_timeout if files else self._defaults["write"]
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout)
        body = _body(request_data, files)
        headers = FORM if isinstance(body, bytes) else None
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout, proxy=self._proxy_for(url)
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as err:
            raise NotSent(f"no connection to Telegram ({err.__class__.__name__})") from err
        except TimeoutError as err:
            raise NoAnswer("Telegram did not answer in time") from err
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as err:
            raise NoAnswer(
                f"the connection broke before the answer ({err.__class__.__name__})"
            ) from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err

    def _proxy_for(self, url: str) -> str | None:
        """HTTP(S)_PROXY / ALL_PROXY / NO_PROXY from the environment, as httpx honours them.

        Looked up once per host: aiohttp's trust_env would read the environment and ~/.netrc
        on every request, a noticeable share of the bot's CPU.
        """
        scheme, host = urlsplit(url)[:2]
        if (scheme, host) not in self._proxies:
            self._proxies[scheme, host] = _env_proxy(scheme, host)
        return self._proxies[scheme, host]

    def _timeout(self, read, write, connect, pool) -> aiohttp.ClientTimeout:
        given = {"read": read, "write": write, "connect": connect, "pool": pool}
        read, write, connect, pool = (
            self._defaults[name] if value is BaseRequest.DEFAULT_NONE else value
            for name, value in given.items()
        )
        phases = (read, write, connect, pool)
        total = None if None in phases else sum(phases)
        waiting = None if connect is None or pool is None else connect + pool
        return aiohttp.ClientTimeout(
            total=total, connect=waiting, sock_connect=connect, sock_read=read
        )


def _env_proxy(scheme: str, host: str) -> str | None:
    if proxy_bypass(host.rsplit(":", 1)[0]):
        return None
    proxies = getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not proxy.startswith("http://"):
        # aiohttp speaks to HTTP proxies only; say so once instead of failing every request.
        log.error("ignoring proxy %s: only http:// proxies are supported", proxy.split("@")[-1])
        return None
    return proxy


def _body(request_data: RequestData | None, files: dict | None):
    """Form fields as PTB's HTTPXRequest sends them: urlencoded, or multipart with files.

    Encoded here rather than by aiohttp: its FormData for a plain dict costs more than a third
    of the bot's CPU per request, and a request is sent for nearly every reply (bench/README.md).
    """
    if request_data is None:
        return None
    if not files:
        return urlencode(request_data.json_parameters).encode()
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
