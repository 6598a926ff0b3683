#!/usr/bin/python3
"""Loads dashboard pages in Debian's headless Chromium over the DevTools protocol and checks them.

For each page in the spec: navigates (with `Authorization: Bearer TOKEN`, or through the login form),
waits until the page's script marked `body[data-ready]`, then checks CSS selectors (minimum counts),
texts, and that no console error, uncaught exception, failed request, CSP violation or HTTP error
response happened. Prints a JSON report; exits 1 if any check failed.

usage: browser_check.py BASE_URL TOKEN SPEC_JSON_FILE
spec: [{"path": "/", "login": false, "count": {"selector": min, ...}, "text": {"selector": "substring", ...},
        "attr": {"selector": ["attribute", "value"]}, "missing": ["selector", ...], "absent": ["secret", ...],
        "submit": {"form": "selector", "fields": {"name": "value"}, "button": "selector"}}, ...]
(with "submit", the form is filled and submitted by pressing the button, and the checks apply to the page it leads to)

Needs Debian's chromium and python3-websocket (websocket-client).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websocket


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="clew-chromium-")
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            raise SystemExit("chromium is not installed (apt-get install chromium)")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise SystemExit("chromium exited before it listened")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
        if url is None:
            raise SystemExit("chromium did not start its DevTools endpoint within 60 s")
        self.ws = websocket.create_connection(url, timeout=30)
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(domain + ".enable", session=True)

    def call(self, method, params=None, session=False, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise RuntimeError(f"{method}: no reply within {timeout} s")

    def pump(self, seconds):
        self.ws.settimeout(0.1)
        end = time.time() + seconds
        while time.time() < end:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate {expression!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate("document.readyState === 'complete' && document.body && document.body.getAttribute('data-ready') === 'true'"):
                    return True
            except RuntimeError:
                pass
            self.pump(0.1)
        return False

    def close(self):
        """Ends Chromium and every process it started, then removes the profile directory.

        Chromium's helpers (zygote, renderers, crashpad) are in its process group and can still write into
        the profile after the main process dies, so the whole group is ended and the removal is retried
        until the directory is gone."""
        asked = False
        try:
            try:
                self.call("Browser.close", timeout=5)
                asked = True
            except Exception:
                pass
            self.ws.close()
        finally:
            if asked:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            for _ in range(50):
                shutil.rmtree(self.profile, ignore_errors=True)
                if not os.path.exists(self.profile):
                    break
                time.sleep(0.1)


def problems_in(events, base):
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("uncaught exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("browser log error: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            out.append("request failed: " + p.get("errorText", ""))
        elif method == "Network.responseReceived":
            r = p.get("response", {})
            if r.get("status", 200) >= 400 and r.get("url", "").startswith(base):
                out.append(f"HTTP {r['status']} for {r['url']}")
    return out


def main():
    base, token, spec_file = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    spec = json.load(open(spec_file))
    browser = Browser()
    report = []
    failed = False
    try:
        for page in spec:
            failures = []
            browser.events = []
            if page.get("login"):
                browser.call("Network.setExtraHTTPHeaders", {"headers": {}}, session=True)
                browser.call("Network.clearBrowserCookies", session=True)
                browser.call("Page.navigate", {"url": base + "/login?next=" + page["path"]}, session=True)
                if not browser.wait_ready():
                    failures.append("login page did not become ready")
                browser.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(token)}; "
                                 "document.getElementById('login-form').submit(); true")
                browser.pump(0.5)
            else:
                browser.call("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Bearer " + token}}, session=True)
                browser.call("Page.navigate", {"url": base + page["path"]}, session=True)
            if not browser.wait_ready():
                failures.append("page did not become ready (body[data-ready]) within 20 s")
            # Fill a form's fields and press one of its buttons, as a user does; the checks then apply to
            # the page the form leads to.
            submit = page.get("submit")
            if submit and not failures:
                found = browser.evaluate(
                    f"(() => {{ const f = document.querySelector({json.dumps(submit['form'])}); if (!f) return false; "
                    f"for (const [k, v] of Object.entries({json.dumps(submit.get('fields', {}))})) f.elements[k].value = v; "
                    f"window.__clewLeaving = true; const b = f.querySelector({json.dumps(submit.get('button', 'button'))}); "
                    f"f.requestSubmit(b); return true; }})()")
                if not found:
                    failures.append(f"{submit['form']}: no such form to submit")
                else:
                    deadline = time.time() + 20
                    while time.time() < deadline:
                        try:
                            if not browser.evaluate("window.__clewLeaving === true"):
                                break
                        except RuntimeError:
                            pass
                        browser.pump(0.1)
                    if not browser.wait_ready():
                        failures.append("the page the form led to did not become ready within 20 s")
            browser.pump(float(page.get("settle", 0.3)))
            location = browser.evaluate("location.pathname + location.search")
            for selector, minimum in page.get("count", {}).items():
                n = browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")
                if n < minimum:
                    failures.append(f"{selector}: {n} element(s), expected at least {minimum}")
            for selector in page.get("missing", []):
                n = browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")
                if n:
                    failures.append(f"{selector}: {n} element(s), expected none")
            for selector, text in page.get("text", {}).items():
                got = browser.evaluate(f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => e.textContent).join(' | ')")
                if text not in (got or ""):
                    failures.append(f"{selector}: text {got!r} does not contain {text!r}")
            for selector, (attr, value) in page.get("attr", {}).items():
                got = browser.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{getAttribute: () => null}}).getAttribute({json.dumps(attr)})")
                if got != value:
                    failures.append(f"{selector}[{attr}] is {got!r}, expected {value!r}")
            html = browser.evaluate("document.documentElement.outerHTML")
            for secret in page.get("absent", []):
                if secret in html:
                    failures.append("the page contains a secret it must not show")
            console = problems_in(browser.events, base)
            failures += console
            failed = failed or bool(failures)
            report.append({"path": page["path"], "location": location, "ok": not failures, "failures": failures})
    finally:
        browser.close()
    print(json.dumps({"pages": report}, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
