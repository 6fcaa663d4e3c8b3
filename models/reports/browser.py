"""Headless Debian chromium driven by selenium: open a page sysdl wrote, from disk; wait until it says
it is ready; read its console errors; time its load; take a screenshot.

    from models.reports.browser import check_page
    print(check_page("explore.html", screenshot="explore.png").summary())     # a page sysdl wrote

Nothing is downloaded: the browser and its driver are Debian's packages chromium and
chromium-driver (./setup.sh installs them), and selenium is given both paths, so its Selenium
Manager (which would fetch a browser) never runs. A sysdl page says it is ready by setting
``document.body.dataset.ready = "1"`` and ``window.sysdlReadyMs = performance.now()``: the
milliseconds since navigation started, which cover reading the file, parsing the embedded data,
decoding the embedded images and the first drawing of every view.
"""

from __future__ import annotations

import shutil
import statistics
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from models.shared.errors import UserError

INSTALL_HINT = "install Debian's chromium and chromium-driver (./setup.sh does: apt-get install chromium chromium-driver)"
READY_SECONDS = 60            # the longest wait for a page to load and say it is ready
WINDOW = (1400, 1100)         # CSS pixels of the headless window (and of a screenshot)


class BrowserError(RuntimeError, UserError):
    """No browser to drive, or a page that never got ready; the message says what to do."""


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver) on PATH, or a BrowserError naming what is missing."""
    found = {name: shutil.which(name) for name in ("chromium", "chromedriver")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise BrowserError(f"no {' and no '.join(missing)} on PATH: {INSTALL_HINT}")
    return found["chromium"], found["chromedriver"]


@contextmanager
def headless_chromium(window: tuple[int, int] = WINDOW):
    """A selenium driver of headless chromium that records the console; quit on exit."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    except WebDriverException as err:   # a driver that does not start, or a browser it cannot run
        reason = (err.msg or str(err)).strip().splitlines()[0] if (err.msg or str(err)).strip() else type(err).__name__
        raise BrowserError(f"chromedriver ({driver_path}) could not start chromium ({browser}): {reason}; "
                           f"chromium and chromium-driver must be the same version: {INSTALL_HINT}") from None
    try:
        driver.set_page_load_timeout(READY_SECONDS)
        # the viewport itself at the window size (the window's size includes the browser's frame)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console's errors (console.error, uncaught exceptions, failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver, path: str | Path) -> float:
    """Load a page from disk and wait until it is ready; returns its ``sysdlReadyMs``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(Path(path).resolve().as_uri())
    try:
        WebDriverWait(driver, READY_SECONDS).until(
            lambda d: d.execute_script("return document.body !== null && document.body.dataset.ready === '1'"))
    except TimeoutException:
        raise BrowserError(f"{path} did not get ready within {READY_SECONDS} s in chromium; console errors: "
                           f"{console_errors(driver) or 'none'}") from None
    return float(driver.execute_script("return window.sysdlReadyMs"))


@dataclass
class PageCheck:
    """What chromium made of a page: its size, its load times, its console errors."""
    path: Path
    size_bytes: int
    browser: str
    load_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def summary(self) -> str:
        lines = [f"{self.path}: {self.size_bytes / 1e6:.1f} MB; ready in "
                 f"{statistics.median(self.load_ms) / 1000:.2f} s in headless {self.browser} (median of "
                 f"{len(self.load_ms)} loads: {', '.join(f'{ms / 1000:.2f}' for ms in self.load_ms)} s), measured",
                 f"console errors: {len(self.errors)}" + "".join(f"\n  {e}" for e in self.errors)]
        if self.screenshot is not None:
            lines.append(f"screenshot: {self.screenshot}")
        return "\n".join(lines)


def check_page(path: str | Path, loads: int = 3, screenshot: str | Path | None = None) -> PageCheck:
    """Load the page ``loads`` times in a fresh headless chromium, collecting errors; then, if asked,
    screenshot the window (the page as it opens)."""
    path = Path(path)
    with headless_chromium() as driver:
        check = PageCheck(path, path.stat().st_size, f"chromium {driver.capabilities.get('browserVersion', '?')}")
        for _ in range(loads):
            check.load_ms.append(open_page(driver, path))
            check.errors += console_errors(driver)
        if screenshot is not None:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(screenshot))
            check.screenshot = Path(screenshot)
    return check
