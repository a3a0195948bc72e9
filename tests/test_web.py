"""`real3d serve` and `real3d report` (issue #22): a real server process, driven over HTTP and in a real
headless Chromium (Debian's `chromium`, through playwright), never a mocked client.

Without a Chromium the browser tests skip, except where REAL3D_REQUIRE_BROWSER=1 (CI sets it: there they fail)."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from real3d.errors import UserError
from real3d.jobs.generate import checked_config
from real3d.jobs.web import report
from tests.cpu import THREADS
from tests.test_generate import tiny

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw_get(port: int, path: str) -> int:
    """A request with the path exactly as written (urllib and browsers would normalise `../` away)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    return connection.getresponse().status


class Server:
    def __init__(self, outputs: Path) -> None:
        self.outputs, self.port = outputs, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"OMP_NUM_THREADS": str(THREADS)}  # its runs: this worker's share of the cores
        command = [sys.executable, "-m", "real3d", "serve", "--port", str(self.port), "--outputs", str(outputs)]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if get(self.url + "/api/presets")[0] == 200:
                    return
            except OSError:
                time.sleep(0.3)
        self.process.kill()
        raise AssertionError(f"real3d serve did not answer: {self.process.stdout.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    outputs = tmp_path_factory.mktemp("outputs")
    hostile = outputs / "hostile-run"  # a run whose prompt (from the CLI, any prior) is markup
    hostile.mkdir()
    (hostile / "config.yaml").write_text(json.dumps({"prompt": HOSTILE, "seed": 3, "steps": 10}))
    (hostile / "metrics.json").write_text(json.dumps({"prompt": HOSTILE, "judge_score": float("nan")}))
    (hostile / "train.log").write_text('{"step": 10, "loss": 1.5}\n')
    (hostile / "checkpoint.pt").write_bytes(b"weights")
    (outputs / "secret.txt").write_text("outside every run")
    (hostile / "link.txt").symlink_to(outputs / "secret.txt")
    running = Server(outputs)
    yield running
    running.stop()


# ------------------------------------------------------------------------------------------- security


def test_the_server_listens_on_127_0_0_1_only(server: Server) -> None:
    """/proc/net/tcp: the listening socket of the port is bound to 127.0.0.1 (0100007F), not to 0.0.0.0."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) == server.port:
                listening.add(address)
    assert listening == {"0100007F"}


def test_file_routes_serve_run_files_and_nothing_outside(server: Server) -> None:
    assert get(f"{server.url}/files/hostile-run/train.log") == (
        200,
        b'{"step": 10, "loss": 1.5}\n',
    )  # so the refusals below can fail
    for path in [
        "/files/hostile-run/../secret.txt",
        "/files/hostile-run/%2e%2e/secret.txt",
        "/files/hostile-run/..%2fsecret.txt",
        "/files/hostile-run/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/files/hostile-run/%2fetc%2fpasswd",
        "/files/..%2f/secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/hostile-run/link.txt",  # a symlink out of the run folder
        "/files/hostile-run/checkpoint.pt",  # inside, but weights and optimiser state are not for download
        "/thumb/..",
        "/download/..%2f..-obj.zip",
        "/api/runs/..%2f..",
    ]:
        assert raw_get(server.port, path) in (403, 404), path


def test_state_changes_come_only_from_the_apps_own_page(server: Server) -> None:
    form = {"prompt": "a red cube", "preset": "real3d", "overrides": "steps=bad"}
    status, body = get(f"{server.url}/api/runs", form, {"Origin": "http://evil.example"})
    assert status == 403
    status, body = get(f"{server.url}/api/runs", form, {"Origin": server.url})
    assert status == 400 and b"steps" in body  # reached the checks (and failed on them: nothing queued)
    assert json.loads(get(f"{server.url}/api/queue")[1]) == {"queue": []}


def test_bad_requests_are_one_line_json_errors(server: Server) -> None:
    for form in [{"prompt": "a red cube", "preset": "../../etc/passwd"}, {"prompt": "a red cube", "seeds": "1,x"}]:
        status, body = get(f"{server.url}/api/runs", form)
        assert status == 400 and "\n" not in json.loads(body)["error"], body
    assert get(f"{server.url}/api/runs/no-such-run")[0] == 404


def test_a_run_whose_weights_fail_shows_their_one_line_error(server: Server) -> None:
    form = {"prompt": "a ripe strawberry", "preset": "real3d-sd", "overrides": "prior.path=/nonexistent/sd"}
    status, body = get(f"{server.url}/api/runs", form)
    assert status == 200, body
    name = json.loads(body)["runs"][0]
    deadline = time.time() + 120
    while (run := json.loads(get(f"{server.url}/api/runs/{name}")[1]))["state"] in ("queued", "running"):
        assert time.time() < deadline, run
        time.sleep(0.5)
    assert run["state"] == "failed" and "/nonexistent/sd" in run["error"] and "\n" not in run["error"], run


# -------------------------------------------------------------------------------------------- browser


def chromium() -> str:
    path = os.environ.get("REAL3D_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("REAL3D_REQUIRE_BROWSER") == "1":
            pytest.fail("no chromium found (apt-get install chromium), and REAL3D_REQUIRE_BROWSER=1")
        pytest.skip("no chromium: apt-get install chromium (make test does, as root)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        # swiftshader: WebGL2 on the CPU, so the model viewer draws on a machine without a GPU
        b = p.chromium.launch(
            executable_path=chromium(), args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        )
        yield b
        b.close()


class Page:
    """A browser tab that records what must never happen: a request off this machine, a console error or a
    dialog (a script that ran)."""

    def __init__(self, browser: object) -> None:
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", self._request)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def _request(self, request: object) -> None:
        url = request.url
        if not url.startswith(("http://127.0.0.1:", "data:", "blob:", "file://")):
            self.outside.append(url)

    def clean(self, expected: str = "rAF timed out") -> None:
        """Nothing left the machine, no script of a page's text ran, no console error but `expected` ones."""
        assert self.outside == [] and self.dialogs == [], (self.outside, self.dialogs)
        assert [e for e in self.errors if not any(x in e for x in (expected, "rAF timed out"))] == []


def drawn_pixels(png: bytes) -> int:
    """Pixels of a screenshot that are not the viewer's white background."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(rgb - 255).sum(-1) > 60).sum())


def message(prompt: str) -> str:
    """The message the CLI prints for this prompt (after 'real3d: error: ')."""
    with pytest.raises(UserError) as e:
        checked_config("real3d", prompt)
    return str(e.value)


def test_the_page_loads_offline_and_shows_errors_of_bad_prompts(server: Server, browser: object) -> None:
    tab = Page(browser)
    tab.page.goto(server.url)
    expect(tab.page.locator("#preset option").nth(4)).to_be_attached()  # app.js fills the list after load
    assert tab.page.locator("#preset option").count() >= 5
    for prompt in ["", "a red cub", "<script>alert(1)</script>"]:
        tab.page.fill("#prompt", prompt)
        tab.page.click("#start-button")
        expect(tab.page.locator("#error")).not_to_be_empty()
        assert tab.page.text_content("#error") == message(prompt)
        tab.page.fill("#prompt", "")
    assert tab.page.locator("#error script").count() == 0
    tab.clean(expected="status of 400")  # the refused form posts themselves


def test_markup_in_a_prompt_is_shown_as_text(server: Server, browser: object) -> None:
    tab = Page(browser)
    tab.page.goto(server.url)
    card = tab.page.locator('[data-run="hostile-run"]')
    card.wait_for()
    assert HOSTILE in card.inner_text() and card.locator("script, img[src=x]").count() == 0
    tab.page.goto(f"{server.url}/run/hostile-run")
    expect(tab.page.locator("#title")).not_to_be_empty()
    assert tab.page.text_content("#title") == HOSTILE and tab.page.locator("main script").count() == 0
    tab.page.wait_for_timeout(500)
    tab.clean()


def test_generate_cancel_resume_and_orbit_the_model_from_the_page(
    server: Server, browser: object, tmp_path: Path
) -> None:
    """Start a tiny run from the form; a second tab sees it in the queue; Cancel stops it with a checkpoint;
    Resume finishes it; the viewer draws the model; the downloads are the run's files."""
    overrides = [o for o in tiny(tmp_path) if not o.startswith(("steps=", "run.checkpoint_every="))]
    tab, other = Page(browser), Page(browser)
    tab.page.goto(server.url)
    tab.page.fill("#prompt", "a red cube")
    tab.page.fill("#overrides", " ".join([*overrides, "steps=40", "run.checkpoint_every=5", "run.log_every=1"]))
    tab.page.click("#start-button")
    tab.page.wait_for_url("**/run/a-red-cube-seed0")
    other.page.goto(server.url)
    other.page.locator("#queue a", has_text="a-red-cube-seed0").wait_for()

    expect(tab.page.locator("#steps")).to_have_text(re.compile(r"step ([6-9]|[1-9][0-9]+) /"), timeout=120_000)
    expect(tab.page.locator("#snapshot")).to_have_attribute("src", re.compile(r"snapshots/step-\d+\.png"))
    tab.page.click("#cancel")
    expect(tab.page.locator("body")).to_have_attribute("data-state", "stopped", timeout=60_000)
    run = server.outputs / "a-red-cube-seed0"
    assert (run / "checkpoint.pt").exists() and not (run / "metrics.json").exists()
    stopped_at = tab.page.text_content("#steps")

    other.page.reload()
    other.page.locator('[data-run="a-red-cube-seed0"]', has_text="stopped").wait_for()
    tab.page.click("#resume")
    expect(tab.page.locator("body")).to_have_attribute("data-state", "done", timeout=240_000)
    assert "step 40 / 40" == tab.page.text_content("#steps") != stopped_at
    tab.page.wait_for_selector("#viewer[data-loaded]", timeout=60_000)
    tab.page.wait_for_timeout(500)
    shot = tab.page.locator("#viewer").screenshot()
    assert drawn_pixels(shot) > 2000  # the red cube on the white background
    assert tab.page.locator("#metrics th", has_text=re.compile("^judge_score$")).count() == 1

    glb = urllib.request.urlopen(server.url + tab.page.get_attribute("#download-glb", "href")).read()
    assert glb == (run / "model.glb").read_bytes()
    archive = zipfile.ZipFile(
        io.BytesIO(urllib.request.urlopen(server.url + tab.page.get_attribute("#download-zip", "href")).read())
    )
    assert sorted(archive.namelist()) == [f"a-red-cube-seed0/model.{e}" for e in ("mtl", "obj", "png")]
    tab.clean()
    other.clean()

    out = tmp_path / "report.html"
    assert (
        subprocess.run([sys.executable, "-m", "real3d", "report", str(run), "--out", str(out)], cwd=ROOT).returncode
        == 0
    )
    page = Page(browser)
    page.page.goto(out.as_uri())
    page.page.wait_for_function("[...document.querySelectorAll('model-viewer')].every(v => v.loaded)", timeout=60_000)
    assert page.page.locator("table th", has_text=re.compile("^mesh_iou$")).count() == 1
    assert drawn_pixels(page.page.locator("model-viewer").first.screenshot()) > 2000
    page.clean()


def test_a_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="holds neither a run"):
        report.build(tmp_path)
