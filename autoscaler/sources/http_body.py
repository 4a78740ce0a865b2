"""Read an HTTP answer within a total time and a size limit.

``requests``' timeout bounds each socket operation, not the request: a server (or a proxy
in front of it) that sends a byte now and then holds the read, and with it the pass, for
as long as it likes. A query that matches far more than it should (a typo in a label
filter) can answer hundreds of megabytes. Both end here with a short, secret-free message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import requests
import urllib3.exceptions

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Larger answers (after decompression) are refused: no signal or actuator page is that big."""

_CHUNK = 64 * 1024


class BodyError(Exception):
    """The answer could not be read in time or in size; the message carries no secret."""


def read_body(resp: requests.Response, deadline: float, timeout: float, max_bytes: int) -> bytes:
    """The body of ``resp`` (sent with ``stream=True``), by ``deadline`` (a
    ``time.monotonic()`` value; ``timeout`` names it in the message) and at most
    ``max_bytes`` long. The response is closed in every case."""
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in _chunks(resp):
            size += len(chunk)
            if size > max_bytes:
                raise BodyError(f"answer larger than {max_bytes} bytes")
            parts.append(chunk)
            if time.monotonic() > deadline:
                raise BodyError(f"timeout after {timeout:g}s (answer still coming)")
    except urllib3.exceptions.ReadTimeoutError:
        raise BodyError(f"timeout after {timeout:g}s") from None
    except urllib3.exceptions.DecodeError:
        raise BodyError("invalid compressed answer") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        raise BodyError("connection closed by the server before the end of the answer") from None
    finally:
        resp.close()
    return b"".join(parts)


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    """What has arrived, one socket read at a time, so the deadline is checked between."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 before 2.3: each chunk may wait for all its bytes
        yield from resp.iter_content(_CHUNK)
        return
    while chunk := read1(_CHUNK, decode_content=True):
        yield chunk
