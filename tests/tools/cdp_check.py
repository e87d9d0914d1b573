#!/usr/bin/env python3
"""cdp_check.py -- open an HTML file in headless Chromium and report what the
page did, through the DevTools protocol over --remote-debugging-pipe (no port,
no websocket: NUL-terminated JSON on file descriptors 3 and 4; Python's
standard library only).

usage: cdp_check.py PAGE.html OUT.json SCREENSHOT.png PGID_FILE

OUT.json: {"requests": [urls the page asked for besides its own file],
           "console_errors": [console.error/assert calls, uncaught exceptions,
                              log entries of level error (CSP, failed loads)],
           "loaded": bool, "dom": {counts the test asserts on}, "screenshot": bytes}

Chromium runs in its own process group, written to PGID_FILE so that the test's
teardown can kill it whatever happens here; it is killed here too, on every
exit path, and dies with this process (PR_SET_PDEATHSIG).
"""
import base64, ctypes, json, os, signal, subprocess, sys, tempfile, time

page, out_path, shot_path, pgid_path = sys.argv[1:5]
page_url = "file://" + os.path.abspath(page)
deadline = time.monotonic() + 90

# What the test checks from the DOM, computed in the page (DevTools evaluation
# is not subject to the page's Content-Security-Policy).
DOM_PROBE = r"""JSON.stringify({
  sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
  gates: document.querySelectorAll('#gates .gate').length,
  gate_verdicts: [...document.querySelectorAll('#gates .gate')].map(g => g.dataset.kind + ' ' + g.dataset.verdict),
  charts: [...document.querySelectorAll('figure.chart')].map(c => ({id: c.id,
    points: +c.dataset.points, polylines: c.querySelectorAll('svg polyline').length})),
  offset_rows: document.querySelectorAll('#offset-table tr.offset').length,
  offset_headers: [...document.querySelectorAll('#offset-table th')].map(t => t.textContent),
  steps: document.querySelectorAll('#steps tr.step').length,
  scripts: document.querySelectorAll('script').length,
  external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !u.startsWith('#')),
  other_kinds: [...document.querySelectorAll('#other h3')].map(h => h.textContent),
  text: document.body.innerText.length,
  owners_text: [...document.querySelectorAll('#plan td')].map(t => t.textContent).filter(t => t.includes('qa ')),
  injected_text: [...document.querySelectorAll('#other details pre')].map(p => p.textContent).filter(t => t.includes('onerror')),
  injected_elements: document.querySelectorAll('img,iframe,object,embed').length,
  height: document.documentElement.scrollHeight
})"""


def pdeathsig():
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def main():
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    udd = tempfile.mkdtemp(prefix="km-chromium-")

    def fds():
        # Chromium reads commands on fd 3 and writes answers on fd 4: the
        # pipe ends go through fresh descriptors first, since one of them
        # may already be 3 or 4 (dup2 onto itself would keep close-on-exec).
        a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
        os.dup2(a, 3)
        os.dup2(b, 4)
        pdeathsig()

    argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--user-data-dir=" + udd,
            "--remote-debugging-pipe", "--window-size=1280,900", "about:blank"]
    proc = subprocess.Popen(argv, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                            stderr=open(out_path + ".chromium.log", "w"), close_fds=True)
    with open(pgid_path, "w") as f:
        f.write(str(proc.pid))
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    result = {"requests": [], "console_errors": [], "loaded": False}
    buf = b""
    next_id = [0]
    pending = {}

    def send(method, params=None, session=None):
        next_id[0] += 1
        msg = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
        return next_id[0]

    def read_one():
        nonlocal buf
        while b"\0" not in buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(from_chrome_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            buf += chunk
        msg, buf = buf.split(b"\0", 1)
        return json.loads(msg)

    def on_event(m):
        meth, p = m.get("method"), m.get("params", {})
        if meth == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url != page_url and not url.startswith("data:"):
                result["requests"].append(url)
        elif meth == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            result["console_errors"].append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif meth == "Runtime.exceptionThrown":
            result["console_errors"].append(p.get("exceptionDetails", {}).get("text", "exception"))
        elif meth == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            result["console_errors"].append(p["entry"].get("text", ""))
        elif meth == "Page.loadEventFired":
            result["loaded"] = True

    def call(method, params=None, session=None):
        want = send(method, params, session)
        while True:
            m = read_one()
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                on_event(m)

    try:
        tid = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        for dom in ("Network", "Runtime", "Log", "Page"):
            call(dom + ".enable", None, sid)
        call("Page.navigate", {"url": page_url}, sid)
        while not result["loaded"]:
            on_event(read_one())
        # Late loads and errors (a lazy image, a timer) get a moment.
        settle = time.monotonic() + 1.0
        call("Runtime.evaluate", {"expression": "1"}, sid)
        while time.monotonic() < settle:
            call("Runtime.evaluate", {"expression": "1"}, sid)
            time.sleep(0.1)
        dom = call("Runtime.evaluate", {"expression": DOM_PROBE, "returnByValue": True}, sid)
        result["dom"] = json.loads(dom["result"]["value"])
        height = min(int(result["dom"].get("height", 900)), 3200)
        call("Emulation.setDeviceMetricsOverride",
             {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}, sid)
        shot = call("Page.captureScreenshot", {"format": "png"}, sid)
        png = base64.b64decode(shot["data"])
        with open(shot_path, "wb") as f:
            f.write(png)
        result["screenshot"] = len(png)
        try:
            send("Browser.close")
        except OSError:
            pass
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        subprocess.run(["rm", "-rf", udd])
    with open(out_path, "w") as f:
        json.dump(result, f)


main()
