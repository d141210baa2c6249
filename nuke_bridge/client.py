"""A small Prefect 3 REST client on the standard library alone.

Nuke ships its own Python, where Prefect (and its dependencies) cannot be installed,
so this module speaks the server's HTTP API directly with :mod:`urllib`:

==========================================  ===================================
``GET  /deployments/name/{flow}/{deploy}``   find a deployment by its full name
``POST /deployments/{id}/create_flow_run``   start a run with parameters
``GET  /flow_runs/{id}``                     the run's state
``POST /flow_runs/{id}/set_state``           cancel a run (state CANCELLING)
``POST /artifacts/filter``                   the run's artifacts (progress, result)
==========================================  ===================================

Settings come from the same environment variables Prefect's own client reads:
``PREFECT_API_URL`` (e.g. ``http://farm:4200/api``), ``PREFECT_API_AUTH_STRING``
(``user:pass`` of a self-hosted server's basic auth, sent as ``Authorization: Basic
base64(user:pass)``) or ``PREFECT_API_KEY`` (Prefect Cloud, sent as ``Bearer``). When both
are set the auth string wins, as in Prefect 3's client.  Every failure is a
:class:`BridgeError` with a one-line message that names the server and the reason.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 10.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})


class BridgeError(Exception):
    """Anything that stops a submission or a poll, as one line an artist can act on.

    ``kind`` is one of ``unreachable``, ``auth``, ``not_found``, ``server``, ``timeout``,
    ``rejected``, ``bad_response``, ``usage``, ``process``; ``status`` the HTTP status if any.
    """

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass(frozen=True)
class FlowRunState:
    """What :meth:`PrefectClient.read_flow_run` reports about one run."""

    id: str
    name: str
    state_type: str  # SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, CRASHED, …
    state_name: str
    message: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.state_type in FINAL_STATES

    @property
    def is_success(self) -> bool:
        return self.state_type == "COMPLETED"


@dataclass(frozen=True)
class Artifact:
    key: str | None
    type: str | None
    data: Any
    description: str | None = None
    created: str = ""


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _detail(body: bytes) -> str:
    """The server's own explanation from an error body (FastAPI ``detail`` or Prefect's ``exception_message``)."""
    try:
        payload = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return _one_line(body.decode("utf-8", "replace"), 200)
    if isinstance(payload, dict):
        for key in ("detail", "exception_message", "message"):
            if key in payload:
                value = payload[key]
                return _one_line(value if isinstance(value, str) else json.dumps(value), 200)
    return _one_line(json.dumps(payload), 200)


class PrefectClient:
    """Blocking calls against one Prefect server; safe to use from a background thread."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        auth_string: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise BridgeError(f"PREFECT_API_URL {api_url!r} is not an http(s) URL (e.g. http://farm:4200/api)", "usage")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": "application/json", "User-Agent": "vfxmatte-nuke-bridge"}
        if auth_string:
            token = base64.b64encode(auth_string.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        elif api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PrefectClient | None:
        """A client for ``PREFECT_API_URL``, or None when no server is configured (local mode)."""
        env = os.environ if environ is None else environ
        url = env.get("PREFECT_API_URL", "").strip()
        if not url:
            return None
        timeout_text = env.get("VFXMATTE_API_TIMEOUT", "").strip()
        try:
            timeout = float(timeout_text) if timeout_text else DEFAULT_TIMEOUT
        except ValueError:
            raise BridgeError(f"VFXMATTE_API_TIMEOUT {timeout_text!r} is not a number of seconds", "usage") from None
        return cls(
            url,
            api_key=env.get("PREFECT_API_KEY") or None,
            auth_string=env.get("PREFECT_API_AUTH_STRING") or None,
            timeout=timeout,
        )

    # -- transport ---------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; returns the decoded JSON body (None for an empty one)."""
        url = self.api_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"the Prefect server at {self.api_url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc.code, exc.read(), method, path) from None
        except (socket.timeout, TimeoutError):
            raise BridgeError(f"{where} did not answer {method} {path} within {self.timeout:g} s", "timeout") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise BridgeError(
                    f"{where} did not answer {method} {path} within {self.timeout:g} s", "timeout"
                ) from None
            raise BridgeError(
                f"cannot reach {where}: {_one_line(str(exc.reason), 120)} (is it running? check PREFECT_API_URL)",
                "unreachable",
            ) from None
        except (ConnectionError, OSError) as exc:  # reset mid-response, TLS failures…
            raise BridgeError(f"lost the connection to {where}: {_one_line(str(exc), 120)}", "unreachable") from None
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise BridgeError(
                f"{where} answered {method} {path} with something that is not JSON (is PREFECT_API_URL the /api URL?)",
                "bad_response",
            ) from None

    def _http_error(self, status: int, body: bytes, method: str, path: str) -> BridgeError:
        where = f"the Prefect server at {self.api_url}"
        if status in (401, 403):
            hint = "set PREFECT_API_AUTH_STRING='user:pass' (self-hosted) or PREFECT_API_KEY (Prefect Cloud)"
            return BridgeError(f"{where} refused our credentials (HTTP {status}): {hint}", "auth", status)
        if status == 404:
            return BridgeError(f"{where} has no {method} {path} (HTTP 404): {_detail(body)}", "not_found", status)
        if status >= 500:
            return BridgeError(f"{where} failed on {method} {path} (HTTP {status}): {_detail(body)}", "server", status)
        return BridgeError(f"{where} rejected {method} {path} (HTTP {status}): {_detail(body)}", "rejected", status)

    # -- the calls the bridge needs ----------------------------------------------------

    def health(self) -> bool:
        return bool(self.request("GET", "/health"))

    def find_deployment(self, full_name: str) -> dict[str, Any]:
        """The deployment ``flow-name/deployment-name``; a missing one is a clear :class:`BridgeError`."""
        flow, sep, deployment = full_name.partition("/")
        if not sep or not flow or not deployment:
            raise BridgeError(f"deployment name {full_name!r} must look like 'flow-name/deployment-name'", "usage")
        path = f"/deployments/name/{urllib.parse.quote(flow, safe='')}/{urllib.parse.quote(deployment, safe='')}"
        try:
            found = self.request("GET", path)
        except BridgeError as exc:
            if exc.kind == "not_found":
                raise BridgeError(
                    f"deployment {full_name!r} not found on {self.api_url}: deploy the vfxmatte flows there first "
                    "(see docs/NUKE.md) or set VFXMATTE_DEPLOYMENT",
                    "not_found",
                    404,
                ) from None
            raise
        if not isinstance(found, dict) or "id" not in found:
            raise BridgeError(f"the Prefect server at {self.api_url} sent a deployment without an id", "bad_response")
        return found

    def create_flow_run(
        self,
        deployment_id: str,
        parameters: Mapping[str, Any],
        name: str | None = None,
        tags: list[str] | None = None,
    ) -> FlowRunState:
        body: dict[str, Any] = {"parameters": dict(parameters)}
        if name:
            body["name"] = name
        if tags:
            body["tags"] = list(tags)
        created = self.request("POST", f"/deployments/{deployment_id}/create_flow_run", body)
        return _flow_run_state(created, self.api_url)

    def submit(self, full_name: str, parameters: Mapping[str, Any], name: str | None = None) -> FlowRunState:
        """Find ``full_name`` and start a run of it with ``parameters``."""
        deployment = self.find_deployment(full_name)
        return self.create_flow_run(str(deployment["id"]), parameters, name=name, tags=["nuke"])

    def read_flow_run(self, flow_run_id: str) -> FlowRunState:
        return _flow_run_state(self.request("GET", f"/flow_runs/{flow_run_id}"), self.api_url)

    def cancel_flow_run(self, flow_run_id: str) -> None:
        """Ask the server to cancel a run (its worker stops it)."""
        state = {"type": "CANCELLING", "name": "Cancelling", "message": "cancelled from Nuke"}
        self.request("POST", f"/flow_runs/{flow_run_id}/set_state", {"state": state, "force": True})

    def read_artifacts(self, flow_run_id: str, limit: int = 200) -> list[Artifact]:
        """The run's artifacts, newest first."""
        body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "CREATED_DESC", "limit": limit}
        found = self.request("POST", "/artifacts/filter", body)
        if not isinstance(found, list):
            raise BridgeError(f"the Prefect server at {self.api_url} sent a non-list of artifacts", "bad_response")
        return [
            Artifact(
                key=item.get("key"),
                type=item.get("type"),
                data=item.get("data"),
                description=item.get("description"),
                created=str(item.get("created") or ""),
            )
            for item in found
            if isinstance(item, dict)
        ]


def latest_artifacts(artifacts: list[Artifact]) -> dict[str, Artifact]:
    """The newest artifact per key (``read_artifacts`` lists newest first)."""
    latest: dict[str, Artifact] = {}
    for artifact in sorted(artifacts, key=lambda a: a.created, reverse=True):
        if artifact.key and artifact.key not in latest:
            latest[artifact.key] = artifact
    return latest


def _flow_run_state(payload: Any, api_url: str) -> FlowRunState:
    if not isinstance(payload, dict) or "id" not in payload:
        raise BridgeError(f"the Prefect server at {api_url} sent a flow run without an id", "bad_response")
    state = payload.get("state") or {}
    return FlowRunState(
        id=str(payload["id"]),
        name=str(payload.get("name") or ""),
        state_type=str(payload.get("state_type") or state.get("type") or "PENDING"),
        state_name=str(payload.get("state_name") or state.get("name") or ""),
        message=_one_line(state.get("message") or ""),
        parameters=dict(payload.get("parameters") or {}),
    )
