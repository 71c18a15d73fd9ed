"""A real headless Chromium for the tests, driven over the DevTools protocol.

No Playwright or Selenium: Chromium's ``--remote-debugging-pipe`` speaks the
Chrome DevTools Protocol (CDP) as NUL-terminated JSON on file descriptors 3
(commands in) and 4 (replies and events out), which the standard library can
drive.  No port is opened and nothing leaves the machine.

``chromium_or_reason()`` finds Debian's chromium, installing it with apt-get
when it is missing and we are root; otherwise it says why there is none.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)
APT_ATTEMPTS = 5
APT_LOCK_WAIT_S = 120


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def install_chromium() -> str:
    """apt-get install Debian's chromium, retrying a few times (another install may hold
    the lock); '' on success, else the reason."""
    error = ""
    for attempt in range(1, APT_ATTEMPTS + 1):
        update = _apt("update", "-qq")
        install = _apt("install", "-y", "-qq", "--no-install-recommends", "chromium")
        if install.returncode == 0 and find_chromium():
            return ""
        lines = (install.stderr or update.stderr or "no output").strip().splitlines()
        error = lines[-1] if lines else "no output"
        if attempt < APT_ATTEMPTS:
            time.sleep(5 * attempt)
    return f"apt-get install chromium failed {APT_ATTEMPTS} times, last: {error}"


def chromium_or_reason() -> tuple[str | None, str]:
    """(path to chromium, '') or (None, why there is none)."""
    path = find_chromium()
    if path:
        return path, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed (as root: apt-get install chromium)"
    reason = install_chromium()
    return find_chromium(), reason


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with a fresh profile, and one page attached over CDP."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="sdcnn-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        command = [
            executable,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            "about:blank",
        ]

        def child_fds() -> None:  # the pipe ends become fds 3 and 4 in chromium
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=child_fds,
            close_fds=False,  # fds 3 and 4 must survive; Python's own fds are not inherited
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        self.session = self._attach_page(width, height)

    # ---- protocol

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CdpError("no reply from chromium in time")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise CdpError(f"chromium exited (status {self.process.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _attach_page(self, width: int, height: int) -> str:
        targets = self.send("Target.getTargets")["targetInfos"]
        pages = [target["targetId"] for target in targets if target["type"] == "page"]
        if pages:
            target_id = pages[0]
        else:
            target_id = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        self.session = session["sessionId"]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return self.session

    # ---- page

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def open(self, url: str, ready: str, timeout: float = 30) -> None:
        """Navigate to ``url`` and wait until the expression ``ready`` is true."""
        self.send("Page.navigate", {"url": url})
        self.wait_for(ready, timeout)

    def wait_for(self, condition: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for: {condition}")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            self.session = ""
            self.send("Browser.close", timeout=5)
        except (CdpError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
