#!/usr/bin/env python3
"""Loads the launcher's web page in headless Chromium and reports what it shows.

A small Chrome DevTools Protocol client (standard library only: a WebSocket
client of its own) so the page runs in real time, as in a user's tab:

  page_check.py --url URL --out DIR [--token T] [--seconds S] [--lag-only]

Prints key=value lines (step_first, step_later, ranks, hosts, loss_points_*,
screenshot, control, lag_*); the caller asserts on them. Exit 0 when the page
could be driven at all, 2 when Chromium is missing, 1 on a driver error.
"""
import argparse, base64, json, os, shutil, signal, socket, struct, subprocess, sys, tempfile, time
import urllib.request


class Cdp:
    """One WebSocket to one DevTools target; call() sends and waits for its reply."""

    def __init__(self, ws_url):
        assert ws_url.startswith("ws://")
        hostport, path = ws_url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("websocket handshake refused: %r" % head[:80])
        self.next_id = 0

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("devtools connection closed")
            buf += chunk
        return buf

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            op = b0 & 0x0F
            if op == 8:
                raise RuntimeError("devtools closed the websocket")
            if op in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return json.loads(message)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self._recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r["result"].get("value")


def start_chromium(chromium, url, profile):
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--user-data-dir=" + profile,
            "--remote-debugging-port=0", "--window-size=1280,1400", url]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    until = time.time() + 60
    while time.time() < until:
        if os.path.exists(port_file):
            lines = open(port_file).read().split("\n")
            if len(lines) >= 2 and lines[0]:
                return proc, int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError("chromium exited with %d" % proc.returncode)
        time.sleep(0.1)
    raise RuntimeError("chromium wrote no DevToolsActivePort in 60 s")


def page_target(port):
    until = time.time() + 30
    while time.time() < until:
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise RuntimeError("no page target")


def wait(cdp, expr, timeout):
    until = time.time() + timeout
    while time.time() < until:
        v = cdp.js(expr)
        if v:
            return v
        time.sleep(0.2)
    return None


STEP = "Number(document.getElementById('step').textContent) || 0"
RANKS = "document.querySelectorAll('#ranks tbody tr').length"
LOSS_POINTS = "Number(document.getElementById('loss-chart').dataset.points || 0)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--lag-only", action="store_true", help="stay --seconds, print the page's lag figures")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    if not os.access(a.chromium, os.X_OK):
        print("chromium not found", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="dpcnn-chromium-")
    url = a.url + ("#token=" + a.token if a.token else "")
    proc = None
    try:
        proc, port = start_chromium(a.chromium, url, profile)
        cdp = Cdp(page_target(port))
        cdp.call("Runtime.enable")
        if a.lag_only:
            # Until --seconds pass or SIGTERM: the last lag figures the page showed.
            def stop(*_):
                raise KeyboardInterrupt
            signal.signal(signal.SIGTERM, stop)
            lag = "{}"
            try:
                until = time.time() + a.seconds
                while time.time() < until:
                    lag = cdp.js("JSON.stringify(document.getElementById('lag').dataset)") or lag
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
            print("lag=" + lag, flush=True)
            return 0
        first = wait(cdp, f"({STEP}) > 0 && ({RANKS}) > 0 && [{STEP}, {LOSS_POINTS}]", a.seconds)
        if not first:
            print("step_first=0")
            return 0
        print(f"step_first={first[0]}\nloss_points_first={first[1]}")
        later = wait(cdp, f"({STEP}) > {first[0]} && ({LOSS_POINTS}) > {first[1]} && [{STEP}, {LOSS_POINTS}]",
                     a.seconds)
        if later:
            print(f"step_later={later[0]}\nloss_points_later={later[1]}")
        print("ranks=%d" % cdp.js(RANKS))
        print("hosts=" + cdp.js("[...document.querySelectorAll('#ranks tbody tr')].map(r => r.cells[0].textContent + '@' + r.cells[1].textContent).join(',')"))
        print("state=" + cdp.js("document.getElementById('state').textContent"))
        print("token_in_url=%d" % (1 if "token=" in cdp.js("location.href") else 0))
        shot = os.path.join(a.out, "page.png")
        png = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(png))
        print("screenshot=" + os.path.abspath(shot))
        if a.token:
            # The Checkpoint button with the token the page took from its URL.
            cdp.js("document.getElementById('checkpoint-button').click()")
            print("control=" + (wait(cdp, "document.getElementById('control-result').textContent", 15) or ""))
            rows = wait(cdp, "document.querySelectorAll('#checkpoints tbody tr').length", a.seconds)
            print("checkpoint_rows=%d" % (rows or 0))
        return 0
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
