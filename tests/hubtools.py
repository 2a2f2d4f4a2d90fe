"""Talking to a running hub from the tests: HTTP requests and kernels on users' servers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import pytest


def http(method: str, url: str, token: str | None = None, scheme: str = "token",
          body: dict | None = None) -> tuple[int, str, dict]:
    """Status, body and headers of one request; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"{scheme} {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, r.read().decode(errors="replace"), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace"), dict(err.headers)


class Kernel:
    """A kernel on a user's Jupyter server, driven over the server's websocket API."""

    def __init__(self, url: str, user: str, token: str, path: str):
        import websocket

        base = f"{url}user/{user}/api"
        status, text, _ = http("POST", f"{base}/sessions", token, body={
            "path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}})
        assert status == 201, f"{status} {text}"
        self.session = json.loads(text)
        self.user, self.token, self.base = user, token, base
        self.id = uuid.uuid4().hex
        ws_url = f"{base}/kernels/{self.session['kernel']['id']}/channels".replace("http", "ws", 1)
        self.ws = websocket.create_connection(
            f"{ws_url}?session_id={self.id}", header=[f"Authorization: token {token}"],
            timeout=300,
        )

    def run(self, code: str, timeout: float = 300) -> tuple[list[dict], str]:
        """Execute ``code``; its output messages and its printed text. Fails on an error."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": self.id,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        outputs, replied, idle = [], False, False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            if time.monotonic() > deadline:
                pytest.fail(f"cell did not finish in {timeout} s:\n{code}")
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "execute_reply":
                replied = True
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append(msg)
        errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
        if errors:
            tb = "\n".join(errors[0]["traceback"])
            pytest.fail(f"cell failed on {self.user}'s server:\n{code}\n{tb}")
        text = "".join(m["content"].get("text", "") for m in outputs
                       if m["msg_type"] == "stream")
        text += "".join(m["content"]["data"].get("text/plain", "") for m in outputs
                        if m["msg_type"] == "execute_result")
        return outputs, text

    def close(self) -> None:
        self.ws.close()
        http("DELETE", f"{self.base}/sessions/{self.session['id']}", self.token)
