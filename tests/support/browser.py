"""Headless Chromium driven over the DevTools protocol, for tests and benches that look at a page.

No driver package: Chromium speaks the protocol over two pipes (``--remote-debugging-pipe``: it
reads commands from fd 3 and writes replies and events to fd 4, each message JSON ended by a NUL
byte). Every request the page makes is recorded from ``Network.requestWillBeSent``, so a test can
check that nothing left the page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["Browser", "chromium_path", "open_browser"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    """Debian's ``chromium`` (or ``$FLOE_CHROMIUM``); None when it is not installed."""
    configured = os.environ.get("FLOE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


def _high(fd: int) -> int:
    """``fd`` moved to a number of 10 or more, close-on-exec."""
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One Chromium process with one page target attached (a flat session)."""

    def __init__(self, executable: str, width: int = 1600, height: int = 1100) -> None:
        self._profile = tempfile.mkdtemp(prefix="floe-chromium-")
        # Our ends and the child's, all above fd 4 so that placing the child's on 3 and 4 can
        # never overwrite one of them; close-on-exec, so only the copies on 3 and 4 survive exec.
        to_child_r, self._to_child = (_high(fd) for fd in os.pipe())
        self._from_child, from_child_w = (_high(fd) for fd in os.pipe())
        argv = [
            executable,
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]

        def child_fds() -> None:  # Chromium reads commands on fd 3, writes on fd 4
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=False,  # keep 3 and 4; every other fd of ours is close-on-exec
            preexec_fn=child_fds,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    # --- the protocol --------------------------------------------------------------------------

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                    self._cond.notify_all()

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = False,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(
                lambda: message_id in self._replies or self._proc.poll() is not None, timeout
            ):
                raise BrowserError(f"{method}: no answer in {timeout} s")
            reply = self._replies.pop(message_id, None)
        if reply is None:
            raise BrowserError(f"{method}: chromium exited: {b''.join(self._stderr)[-2000:]!r}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result") or {}
        return result

    def events(self, method: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if method is None or e.get("method") == method]

    def wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        with self._cond:
            start = len(self._events)
            found: list[dict[str, Any]] = []

            def seen() -> bool:
                found[:] = [e for e in self._events[start:] if e.get("method") == method]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise BrowserError(f"no {method} event in {timeout} s")
            return found[0]

    # --- what tests use ------------------------------------------------------------------------

    def offline(self) -> None:
        """Disable the network for the page: every request fails as if the cable were pulled."""
        self.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
            session=True,
        )

    def before_load(self, script: str) -> None:
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": script}, session=True)

    def open(self, url: str, timeout: float = 60.0) -> None:
        with self._cond:
            self._events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return (result.get("result") or {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        script = (
            "new Promise((resolve, reject) => { const t0 = performance.now(); (function poll() {"
            f" let v; try {{ v = ({expression}); }} catch (e) {{ v = undefined; }}"
            f" if (v) resolve(v); else if (performance.now() - t0 > {timeout * 1000})"
            " reject(new Error('timed out')); else setTimeout(poll, 20); })(); })"
        )
        return self.evaluate(script, timeout=timeout + 5)

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def console_errors(self) -> list[str]:
        errors = [
            json.dumps(e["params"]["exceptionDetails"])[:500]
            for e in self.events("Runtime.exceptionThrown")
        ]
        errors += [
            e["params"]["entry"].get("text", "")
            for e in self.events("Log.entryAdded")
            if e["params"]["entry"].get("level") == "error"
        ]
        return errors

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics", session=True)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element matching ``selector``."""
        box = self.evaluate(
            "(() => { const el = document.querySelector(" + json.dumps(selector) + ");"
            " if (!el) return null; el.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise BrowserError(f"nothing matches {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
                session=True,
            )

    def type_text(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text}, session=True)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13},
                session=True,
            )

    def close(self) -> None:
        with suppress(BrowserError):
            self.call("Browser.close", timeout=10)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            with suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)


@contextmanager
def open_browser(executable: str, width: int = 1600, height: int = 1100) -> Iterator[Browser]:
    browser = Browser(executable, width, height)
    try:
        yield browser
    finally:
        browser.close()
