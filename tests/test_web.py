"""The web page in a real headless Chromium, against the real server (``restoreagent ui``).

Needs Gradio and Selenium (``pip install -e ".[test,ui]"``) and Debian's ``chromium`` and
``chromium-driver`` (``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs them).
The screenshot goes to ``docs/images/ui.png`` with ``RESTOREAGENT_SCREENSHOTS=1`` (how the README's
was made), else to the test's temp folder.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_server import REPO, _free_port

from restoreagent.tools.util.synthesis import add_gaussian_noise

pytest.importorskip("gradio", reason="the page needs Gradio: pip install -e '.[ui]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def test_bad_uploads_are_named_in_the_users_words(tmp_path):
    from restoreagent import Configuration
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.graph.web import Studio
    from restoreagent.tools.registry import ToolRegistry

    config = Configuration(work_dir=tmp_path / "runs", max_pixels=10_000)
    studio = Studio(config, db_path=tmp_path / "t.sqlite", toolbox=Toolbox(ToolRegistry([]), config))
    (tmp_path / "notes.png").write_text("not a photo")
    Image.new("RGB", (200, 100)).save(tmp_path / "big.png")
    Image.new("RGB", (50, 50)).save(tmp_path / "fine.png")
    assert studio.check_upload(str(tmp_path / "notes.png")) == "notes.png: not an image Pillow can read"
    assert studio.check_upload(str(tmp_path / "big.png")).startswith("big.png: 200×100 = 20,000 pixels exceeds the limit")
    assert studio.check_upload(str(tmp_path / "fine.png")) is None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real server for the module's tests (each test's browser has its own storage, so its own threads)."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {**os.environ, "RESTOREAGENT_WORK_DIR": str(tmp_path / "runs")}
    cmd = [sys.executable, "-m", "restoreagent", "ui", "--port", str(port), "--db", str(tmp_path / "threads.sqlite"),
           "--weights-dir", str(tmp_path / "no-weights"), "--scale", "1"]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail("the page did not start: " + (tmp_path / "server.log").read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture()
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Debian chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs Selenium: pip install selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1700"):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds=240):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Gradio redraws components as results stream in: an element found may be gone a moment later.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, seconds, poll_frequency=0.5, ignored_exceptions=ignored).until(condition)


def _after_image(driver) -> tuple[str, np.ndarray]:
    """The 'after' image of the before/after slider: its address and its pixels."""
    from selenium.webdriver.common.by import By

    src = _wait(driver, lambda d: (imgs := d.find_elements(By.CSS_SELECTOR, "#result img")) and imgs[-1].get_attribute("src"), 30)
    with urllib.request.urlopen(src, timeout=30) as response:
        return src, np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


def _act(driver, selector: str, action) -> None:
    """``action(element)`` on the element ``selector`` finds, found again if Gradio redrew it meanwhile."""
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: action(d.find_element(By.CSS_SELECTOR, selector)) or True, 30)


def _text(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return _wait(driver, lambda d: d.find_element(By.ID, elem_id).text + " ", 30)[:-1]


def _noisy_photo(tmp_path: Path) -> Path:
    from skimage import data

    clean = data.astronaut()[:320, 96:416].astype(np.float32) / 255.0  # NASA photo, public domain
    noisy = add_gaussian_noise(clean, 25, np.random.default_rng(0))
    photo = tmp_path / "noisy.png"
    Image.fromarray((np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)).save(photo)
    return photo


@pytest.mark.slow
def test_the_page_restores_chats_undoes_and_refuses_a_corrupt_upload(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    photo = _noisy_photo(tmp_path)
    uploaded = np.asarray(Image.open(photo).convert("RGB"))

    browser.get(server)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 60)
    _act(browser, "#upload input[type=file]", lambda e: e.send_keys(str(photo)))

    # 1-2. the result shows, and the steps are listed with their verdicts
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#result img")) == 2 and "kept" in _text(d, "steps"))
    restored_src, restored = _after_image(browser)
    assert restored.shape == uploaded.shape  # --scale 1: the input's size
    assert np.abs(restored.astype(float) - uploaded).mean() > 2  # the agent changed it
    assert "denoise" in _text(browser, "steps")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#strip img")) >= 2  # the original, then each kept step
    assert browser.find_elements(By.CSS_SELECTOR, "#assessment canvas, #assessment svg")  # the bar chart

    # a question changes nothing: the same image, and the reply says so
    _act(browser, "#message textarea", lambda e: e.send_keys("what did you do?", Keys.ENTER))
    _wait(browser, lambda d: "Nothing changed" in _text(d, "chat"))
    assert _after_image(browser)[0] == restored_src
    shot = REPO / "docs" / "images" / "ui.png" if os.environ.get("RESTOREAGENT_SCREENSHOTS") == "1" else tmp_path / "ui.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # 3. "undo the last step": the image changes back to the upload
    _act(browser, "#message textarea", lambda e: e.send_keys("undo the last step", Keys.ENTER))
    _wait(browser, lambda d: "back to the original photo" in _text(d, "chat") and _after_image(d)[0] != restored_src)
    np.testing.assert_array_equal(_after_image(browser)[1], uploaded)
    assert "img-" not in _text(browser, "chat")  # no internal ids

    # a reload keeps the thread
    browser.refresh()
    _wait(browser, lambda d: "undo the last step" in _text(d, "chat") and d.find_elements(By.CSS_SELECTOR, "#result img"), 60)

    # 4. a corrupt upload gets a clear message, and the server keeps serving
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(photo.read_bytes()[:200])
    _act(browser, "#upload input[type=file]", lambda e: e.send_keys(str(corrupt)))
    _wait(browser, lambda d: "Cannot restore broken.png" in _text(d, "notice"), 60)
    assert "corrupt or truncated" in _text(browser, "notice") and str(tmp_path) not in _text(browser, "notice")
    assert urllib.request.urlopen(server, timeout=10).status == 200


@pytest.mark.slow
def test_the_page_asks_before_each_step(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    photo = _noisy_photo(tmp_path)
    browser.get(server)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#approve input[type=checkbox]"), 60)
    _act(browser, "#approve input[type=checkbox]", lambda e: e.click())
    _act(browser, "#upload input[type=file]", lambda e: e.send_keys(str(photo)))
    _wait(browser, lambda d: "Proposed step 1" in _proposal(d))
    proposal = _proposal(browser)
    assert "on the current image" in proposal and "img-" not in proposal
    assert not browser.find_elements(By.CSS_SELECTOR, "#result img")  # nothing ran yet
    _act(browser, "#approve-step", lambda e: e.click())
    _wait(browser, lambda d: "kept" in _text(d, "steps") and "Done" in _text(d, "chat"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result img")) == 2 and not _proposal(browser)

    # "stronger" proposes another denoiser; every proposal is rejected, and the agent says what is left
    _act(browser, "#message textarea", lambda e: e.send_keys("stronger\n"))
    rejected: set[str] = set()

    def next_proposal(d) -> str | bool:
        """'done' once the agent has answered, else the number of a proposal not yet rejected."""
        if "You can still ask for" in _text(d, "chat"):
            return "done"
        found = re.search(r"Proposed step (\d+)", _proposal(d))
        return found.group(1) if found and found.group(1) not in rejected else False

    while (step := _wait(browser, next_proposal)) != "done":
        rejected.add(step)
        _act(browser, "#reject-step", lambda e: e.click())
    assert rejected and "2" in rejected
    _wait(browser, lambda d: "You can still ask for" in _text(d, "chat"))
    assert "rejected by the user" in _text(browser, "steps")


def _proposal(driver) -> str:
    """The text of the approval panel, '' when it is hidden."""
    from selenium.webdriver.common.by import By

    def read(d) -> str:
        shown = [e for e in d.find_elements(By.ID, "approval-text") if e.is_displayed()]
        return (shown[0].text if shown else "") + " "

    return _wait(driver, read, 30)[:-1]
