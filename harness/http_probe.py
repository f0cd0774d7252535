"""One HTTP GET the way a kubelet probes or Prometheus scrapes a worker: status and body, errors included."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_get(url: str, timeout_s: float = 10) -> tuple[int, str]:
    """(status, body); an HTTP error status is an answer, not an exception. Raises OSError if nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
