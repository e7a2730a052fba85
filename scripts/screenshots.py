#!/usr/bin/env python3
"""Screenshots of Lyceum's main pages, light, dark and at phone width.

    python3 scripts/screenshots.py [--out screenshots] [--site URL] [--only home,course,...]

Without --site it starts the demo site itself (`cargo run --release`, or the
binary given with --lyceum) on a free port with a fresh data directory, and
stops it at the end. It drives headless Chromium through chromedriver
(LYCEUM_TEST_BROWSER and LYCEUM_TEST_CHROMEDRIVER, or `chromium` and
`chromedriver` on the PATH), signs in with the demo accounts the home page
shows, and writes NAME-light.png and NAME-dark.png (1280 px wide) and
NAME-phone.png (390 px) for each page into the output folder, each the whole
length of the page. Only the Python standard library is used.
"""

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

THREAD = "a thread of this forum; the demo has none, so one is started the first time"
THREAD_PATH = r"^/forums/[\w-]+/threads/\d+$"

# (name, who is signed in, how to get there): steps, each a path, a pattern
# of a link to follow on the page reached so far, or (pattern, CSS): the
# first such link whose page holds what the CSS selector finds.
PAGES = [
    ("home", None, ["/"]),
    ("catalog", None, ["/courses"]),
    ("course", None, ["/courses", r"^/courses/[\w-]+$"]),
    ("signin", None, ["/signin"]),
    ("dashboard", "Learner", ["/dashboard"]),
    ("unit", "Learner", ["/dashboard", r"^/learn/[\w-]+$", r"^/learn/[\w-]+/units/\d+$"]),
    ("quiz", "Learner", ["/dashboard", r"^/learn/[\w-]+$", (r"^/learn/[\w-]+/units/\d+$", "form.quiz, .quiz fieldset")]),
    ("forum-thread", "Learner", ["/forums", (r"^/forums/[\w-]+$", "a[href*='/threads/'], #new-thread"), THREAD]),
    ("sharing", "Learner", ["/sharing"]),
    ("account", "Learner", ["/account"]),
    ("partner", "Sponsor", ["/partners", r"^/partners/[\w-]+$"]),
    ("sponsor-report", "Sponsor", ["/partners", r"^/partners/[\w-]+$", r"^/partners/[\w-]+/report$"]),
    ("studio", "Staff", ["/studio"]),
    ("studio-course", "Staff", ["/studio", r"^/studio/courses/[\w-]+$"]),
    ("studio-unit", "Staff", ["/studio", r"^/studio/courses/[\w-]+$", r"^/studio/units/\d+$"]),
    ("staff", "Staff", ["/staff"]),
    ("staff-analytics", "Staff", ["/staff/analytics"]),
    ("staff-jobs", "Staff", ["/staff/jobs"]),
    ("moderation", "Staff", ["/forums/moderation"]),
]

VARIANTS = [("light", "light", 1280), ("dark", "dark", 1280), ("phone", "light", 390)]
TALLEST = 8000  # px: longer pages are cut here


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, seconds, process=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit(f"error: {process.args[0]} stopped before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    sys.exit(f"error: {url} did not answer within {seconds} s")


class WebDriver:
    """Just enough of the W3C WebDriver protocol, and Chrome's DevTools commands through it."""

    def __init__(self, driver_url, chromium):
        self.url = driver_url
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--no-first-run", "--disable-background-networking", "--force-prefers-reduced-motion"]
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": chromium, "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            sys.exit(f"error: WebDriver {method} {path}: {e.read().decode(errors='replace')[:500]}")

    def cmd(self, path, body=None):
        return self.call("POST", f"/session/{self.session}{path}", body)

    def goto(self, url):
        self.cmd("/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("/execute/sync", {"script": script, "args": list(args)})

    def cdp(self, command, params):
        return self.cmd("/goog/cdp/execute", {"cmd": command, "params": params})

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except SystemExit:
            pass

    def shot(self, path, scheme, width):
        self.cdp("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        self.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.call("POST", f"/session/{self.session}/execute/async", {"script": SETTLE, "args": []})
        height = min(int(self.js("return document.documentElement.scrollHeight;")), TALLEST)
        self.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        png = self.cdp("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))


# Waits until the colours stop fading after a switch of colour scheme: every
# element's transition, then those that set off in the elements inheriting from it.
SETTLE = """
    const done = arguments[arguments.length - 1];
    let frames = 0;
    const settled = () => {
        const running = document.getAnimations();
        if (running.length === 0 || frames > 200) { done(true); return; }
        frames += 1;
        Promise.all(running.map((a) => a.finished.catch(() => null))).then(() => requestAnimationFrame(settled));
    };
    settled();
"""

LINKS = "return [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href'));"


def reach(driver, site, steps):
    """Follows the steps; returns the path reached, or None."""
    path = None
    for step in steps:
        if isinstance(step, str) and step.startswith("/"):
            path = step
        elif step == THREAD:
            path = thread(driver)
            if path is None:
                return None
        else:
            pattern, holding = step if isinstance(step, tuple) else (step, None)
            candidates = [h for h in driver.js(LINKS) if re.match(pattern, h.split("?")[0].split("#")[0])]
            if holding:
                candidates = [c for c in dict.fromkeys(candidates) if holds(driver, site, c, holding)][:1]
            if not candidates:
                return None
            path = candidates[0].split("#")[0]
        driver.goto(site + path)
    return path


def current_path(driver):
    return driver.js("return location.pathname + location.search;")


def thread(driver):
    """A thread of the forum shown, started (as a sample) when it has none."""
    threads = [h for h in driver.js(LINKS) if re.match(THREAD_PATH, h.split("?")[0])]
    if not threads and driver.js("return !!document.getElementById('new-thread');"):
        before = current_path(driver)
        driver.js("const form = document.getElementById('new-thread');"
                  "form.querySelector('[name=title]').value = 'Study group for this week';"
                  "form.querySelector('[name=body]').value = 'Who wants to go through **this week\\'s units** "
                  "together? Thursday evening suits me; reply with a time that suits you.';"
                  "form.submit();")
        for _ in range(50):
            if current_path(driver) != before:
                break
            time.sleep(0.1)
        if re.match(THREAD_PATH, current_path(driver).split("?")[0]):
            return current_path(driver)
        threads = [h for h in driver.js(LINKS) if re.match(THREAD_PATH, h.split("?")[0])]
    return threads[0] if threads else None


def holds(driver, site, path, css):
    driver.goto(site + path)
    return bool(driver.js("return !!document.querySelector(arguments[0]);", css))


def demo_accounts(driver, site):
    """The demo accounts the home page shows: {role's first word: (email, password)}."""
    driver.goto(site + "/")
    text = driver.js("const b = document.querySelector('.demo-banner'); return b ? b.innerHTML : '';")
    found = re.findall(r"([A-Z][\w ()]*?):\s*<code>([^<]+)</code>\s*/\s*<code>([^<]+)</code>", text)
    return {role.split()[0]: (email, password) for role, email, password in found}


def sign_in(driver, site, email, password):
    driver.call("DELETE", f"/session/{driver.session}/cookie")
    driver.goto(site + "/signin")
    driver.js("document.getElementById('f-login').value = arguments[0];"
              "document.getElementById('f-password').value = arguments[1];"
              "document.querySelector(\"form[action='/signin']\").submit();", email, password)
    for _ in range(50):
        if driver.js("return !!document.querySelector('.user-menu strong');"):
            return
        time.sleep(0.1)
    sys.exit(f"error: {email} could not sign in at {site}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="screenshots", help="folder for the PNG files (default: screenshots)")
    parser.add_argument("--site", help="a running Lyceum demo site, e.g. http://127.0.0.1:8000 (default: start one)")
    parser.add_argument("--lyceum", help="the lyceum binary to start (default: cargo run --release --)")
    parser.add_argument("--only", help="comma-separated page names: " + ",".join(p[0] for p in PAGES))
    opts = parser.parse_args()
    pages = PAGES
    if opts.only:
        wanted = opts.only.split(",")
        unknown = sorted(set(wanted) - {p[0] for p in PAGES})
        if unknown:
            parser.error(f"unknown page names {unknown}; known: {[p[0] for p in PAGES]}")
        pages = [p for p in PAGES if p[0] in wanted]
    chromium = os.environ.get("LYCEUM_TEST_BROWSER") or shutil.which("chromium") or shutil.which("google-chrome")
    chromedriver = os.environ.get("LYCEUM_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        sys.exit("error: headless Chromium and chromedriver are needed (LYCEUM_TEST_BROWSER, LYCEUM_TEST_CHROMEDRIVER)")
    os.makedirs(opts.out, exist_ok=True)

    started = []
    data_dir = None
    try:
        site = opts.site
        if not site:
            port = free_port()
            data_dir = tempfile.mkdtemp(prefix="lyceum-screenshots-")
            env = dict(os.environ, LYCEUM_DATA_DIR=data_dir, LYCEUM_ADDRESS="127.0.0.1", LYCEUM_PORT=str(port),
                       LYCEUM_DATABASE_URL=f"sqlite://{data_dir}/lyceum.db", LYCEUM_DEMO="true")
            env.pop("LYCEUM_BASE_URL", None)
            command = [opts.lyceum] if opts.lyceum else ["cargo", "run", "--release", "--"]
            print(f"starting the demo site: {' '.join(command)} serve (data in {data_dir})", file=sys.stderr)
            started.append(subprocess.Popen(command + ["serve"], env=env, stdout=subprocess.DEVNULL))
            site = f"http://127.0.0.1:{port}"
            wait_for(site + "/healthz", 1800, started[-1])
        site = site.rstrip("/")
        driver_port = free_port()
        started.append(subprocess.Popen([chromedriver, f"--port={driver_port}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(f"http://127.0.0.1:{driver_port}/status", 30, started[-1])
        driver = WebDriver(f"http://127.0.0.1:{driver_port}", chromium)
        try:
            accounts = demo_accounts(driver, site)
            written, missing, signed_in = [], [], "nobody"
            for name, who, steps in pages:
                if who != signed_in:
                    if who is None:
                        driver.call("DELETE", f"/session/{driver.session}/cookie")
                    elif who in accounts:
                        sign_in(driver, site, *accounts[who])
                    else:
                        sys.exit(f"error: the home page of {site} shows no {who} demo account (is it a demo site?)")
                    signed_in = who
                path = reach(driver, site, steps)
                if path is None:
                    missing.append(name)
                    continue
                for variant, scheme, width in VARIANTS:
                    file = os.path.join(opts.out, f"{name}-{variant}.png")
                    driver.shot(file, scheme, width)
                    written.append(file)
                driver.cdp("Emulation.clearDeviceMetricsOverride", {})
                print(f"{name}: {path}", file=sys.stderr)
        finally:
            driver.quit()
        print(f"{len(written)} screenshots in {opts.out}", file=sys.stderr)
        if missing:
            sys.exit(f"error: no link led to {missing} on {site}")
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
