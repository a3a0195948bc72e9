"""The README's screenshots of `real3d serve` and `real3d report`, taken in headless Chromium (Debian's).

    python benchmarks/screenshots.py [--out docs/img] [--outputs outputs/web] [prompt ...]

Starts `real3d serve` on a free port over --outputs, starts each prompt from the form at the fast budget (the
preset as written), shoots the run page while the first one trains, then the finished run (the model in the
viewer), the gallery, and the report of the first run opened from disk. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red cube on top of a blue sphere", "a yellow cone"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="*", default=PROMPTS)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--outputs", type=Path, default=ROOT / "outputs" / "web")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "real3d", "serve", "--port", str(port), "--outputs", str(args.outputs)]
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/api/presets", timeout=5)
                break
            except OSError:
                time.sleep(0.3)
        shoot(url, args)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)


def shoot(url: str, args: argparse.Namespace) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 860})
        first = ""
        for prompt in args.prompts:  # the first runs, the others queue behind it (each from its own tab)
            tab = browser.new_page()
            tab.goto(url)
            tab.fill("#prompt", prompt)
            tab.click("#start-button")
            tab.wait_for_url("**/run/**")
            first = first or tab.url.rsplit("/", 1)[1]
            tab.close()
        page.goto(f"{url}/run/{first}")
        expect(page.locator("#steps")).to_have_text(re.compile(r"step [1-9][0-9]{2,} /"), timeout=600_000)
        expect(page.locator("#snapshot")).to_have_attribute("src", re.compile("step-"))
        page.wait_for_timeout(1500)
        page.screenshot(path=args.out / "serve-running.png")
        expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=1_800_000)
        page.wait_for_selector("#viewer[data-loaded]", timeout=120_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out / "serve-result.png", full_page=True)
        page.goto(url)
        page.locator(".card img").first.wait_for()
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out / "serve-gallery.png")

        report = args.outputs / first / "report.html"
        subprocess.run([sys.executable, "-m", "real3d", "report", str(args.outputs / first)], check=True)
        page.goto(report.resolve().as_uri())
        page.wait_for_function("[...document.querySelectorAll('model-viewer')].every(v => v.loaded)")
        page.wait_for_timeout(1000)
        page.screenshot(path=args.out / "report.png", full_page=True)
        browser.close()
    print(f"screenshots in {args.out}: serve-running.png, serve-result.png, serve-gallery.png, report.png")


if __name__ == "__main__":
    main()
