"""The explorer page in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromedriver (models/reports/browser.py). Each test opens the page from disk, clicks
and filters as a user would, and checks what the page shows against the predictions computed in
conftest.py; any console error fails the test. Skipped only where chromium or chromedriver is not
installed (./setup.sh installs both)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from models.cli.main import main
from models.reports.browser import INSTALL_HINT, console_errors, headless_chromium, open_page


@pytest.fixture(scope="module")
def browser():
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: {INSTALL_HINT}")
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def page(explored, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "explore.html"
    assert main(["explore", "--base", str(explored.base), "--pruned", str(explored.pruned), "--out", str(path),
                 "--dataset", "synthetic", "--no-track", "--no-progress"]) == 0
    return path


@pytest.fixture
def driver(browser, page):
    """The page freshly loaded; afterwards, the console must hold no error."""
    open_page(browser, page)
    yield browser
    assert console_errors(browser) == []


def shown_matrix(driver) -> torch.Tensor:
    counts = driver.execute_script(
        "return [...document.querySelectorAll('#confusion td.cell')].map(td => [+td.dataset.true, "
        "+td.dataset.pred, +td.dataset.count, td.textContent]);")
    matrix = torch.zeros(10, 10, dtype=torch.int64)
    for t, p, n, text in counts:
        assert text == (str(n) if n else "")
        matrix[t, p] = n
    return matrix


def gallery(driver) -> list[dict]:
    items = driver.execute_script(
        "return [...document.querySelectorAll('#gallery .gallery-item')].map(d => ({index: +d.dataset.index, "
        "true: +d.dataset.true, pred: +d.dataset.pred, model: d.dataset.model, conf: +d.dataset.conf, "
        "text: d.innerText}));")
    count = int(driver.find_element("id", "gallery-count").text)
    assert count == len(items) and driver.find_element("id", "gallery-more").text == ""
    return items


def click(driver, css: str) -> None:
    element = driver.find_element("css selector", css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element("id", select_id)).select_by_value(value)


def grid_count(driver) -> int:
    return int(driver.find_element("id", "grid-count").get_attribute("data-count"))


def embedded_confidences(driver, model: int) -> torch.Tensor:
    data = driver.execute_script("return JSON.parse(document.getElementById('explore-data').textContent)")
    return torch.tensor(data["models"][model]["conf"])


def test_clicking_a_cell_shows_exactly_its_images(driver, explored):
    matrix = explored.confusion("base")
    assert torch.equal(shown_matrix(driver), matrix)
    wrong = matrix - torch.diag(torch.diag(matrix))
    t_wrong, p_wrong = divmod(int(wrong.argmax()), 10)
    t_right = int(torch.diag(matrix).argmax())
    empty = (matrix == 0).nonzero()[0].tolist()
    for t, p in ((t_wrong, p_wrong), (t_right, t_right), tuple(empty)):
        click(driver, f'#confusion td.cell[data-true="{t}"][data-pred="{p}"]')
        items = gallery(driver)
        expected = ((explored.labels == t) & (explored.pred["base"] == p)).nonzero().flatten().tolist()
        assert len(items) == matrix[t, p] and sorted(item["index"] for item in items) == expected
        for item in items:
            assert (item["true"], item["pred"], item["model"]) == (t, p, "base")
            assert f"true: class {t}" in item["text"] and f"base: class {p}" in item["text"]
        assert driver.find_element("css selector", "#confusion td.selected").get_attribute("data-true") == str(t)


def test_filters_update_every_view(driver, explored):
    labels, pred = explored.labels, explored.pred["base"]
    assert grid_count(driver) == len(labels)
    choose(driver, "filter-outcome", "wrong")
    wrong = pred != labels
    assert torch.equal(shown_matrix(driver), explored.confusion("base", keep=wrong))
    assert grid_count(driver) == int(wrong.sum())
    per_class = driver.execute_script("return [...document.querySelectorAll('#per-class tr[data-class]')]"
                                      ".map(tr => +tr.children[1].textContent);")
    assert per_class == torch.bincount(labels[wrong], minlength=10).tolist()
    compare_total = driver.execute_script("return +document.querySelector('#compare-table tr:last-child')"
                                          ".children[1].textContent;")
    assert compare_total == int(wrong.sum())
    assert all(item["pred"] != item["true"] for item in gallery(driver))
    click(driver, '#confusion td.cell[data-true="3"][data-pred="3"]')
    assert gallery(driver) == []                                # a diagonal cell holds no wrong prediction

    click(driver, '#filter-classes input[data-class="0"]')      # class 0 off
    keep = wrong & (labels != 0)
    assert torch.equal(shown_matrix(driver), explored.confusion("base", keep=keep))
    assert grid_count(driver) == int(keep.sum())

    confidence = embedded_confidences(driver, 0)
    box = driver.find_element("id", "filter-conf-min")
    box.clear()
    box.send_keys("0.3")
    keep &= confidence >= 0.3
    assert torch.equal(shown_matrix(driver), explored.confusion("base", keep=keep))
    assert grid_count(driver) == int(keep.sum())
    t, p = divmod(int(explored.confusion("base", keep=keep).argmax()), 10)
    click(driver, f'#confusion td.cell[data-true="{t}"][data-pred="{p}"]')
    items = gallery(driver)
    assert len(items) == int((keep & (labels == t) & (pred == p)).sum()) > 0
    assert all(item["conf"] >= 0.3 for item in items)


def test_the_other_model_and_what_pruning_cost(driver, explored):
    labels = explored.labels
    choose(driver, "model", "1")
    assert torch.equal(shown_matrix(driver), explored.confusion("pruned"))
    base_right, pruned_right = explored.pred["base"] == labels, explored.pred["pruned"] == labels
    lost = torch.bincount(labels[base_right & ~pruned_right], minlength=10)
    gained = torch.bincount(labels[~base_right & pruned_right], minlength=10)
    rows = driver.execute_script("return [...document.querySelectorAll('#compare-table tr[data-class]')]"
                                 ".map(tr => [+tr.children[4].textContent, +tr.children[5].textContent]);")
    assert rows == torch.stack([lost, gained], dim=1).tolist()
    t = int(lost.argmax())
    click(driver, f'#compare-table tr[data-class="{t}"] td:nth-child(5) .link')
    items = gallery(driver)
    expected = (base_right & ~pruned_right & (labels == t)).nonzero().flatten().tolist()
    assert sorted(item["index"] for item in items) == expected
    assert all("base: class" in item["text"] and "pruned: class" in item["text"] for item in items)


def test_a_grid_block_and_a_confused_pair_open_their_images(driver, explored):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    labels, pred = explored.labels, explored.pred["base"]
    canvas = driver.find_element("id", "grid")
    layout = json.loads(canvas.get_attribute("data-layout"))
    t = 2                                             # rows: true class; columns: right / wrong
    x = layout["labelW"] + 1 * (layout["blockW"] + layout["gap"]) + 2          # the block's first tile
    y = layout["headH"] + t * (layout["blockH"] + layout["gap"]) + 2
    # that point in the middle of the window (clear of the sticky filters), then a real click on it
    left, top = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); window.scrollBy(0, r.top + arguments[1] - innerHeight / 2);"
        "const s = arguments[0].getBoundingClientRect(); return [s.left, s.top];", canvas, y)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(left + x), int(top + y)).click()
    actions.perform()
    items = gallery(driver)
    assert len(items) == int(((labels == t) & (pred != t)).sum())
    assert all(item["true"] == t and item["pred"] != t for item in items)

    top = driver.find_element("css selector", "#pairs .pair")
    t, p, n = (int(top.get_attribute(f"data-{key}")) for key in ("true", "pred", "count"))
    matrix = explored.confusion("base")
    assert n == int((matrix - torch.diag(torch.diag(matrix))).max()) == matrix[t, p]
    click(driver, "#pairs .pair")
    assert len(gallery(driver)) == n


@pytest.mark.slow
@pytest.mark.needs_data
def test_the_page_of_the_whole_test_set(browser, fashion_mnist, trained_small_checkpoint, tmp_path):
    """All 10,000 Fashion-MNIST test images: the page stays under 30 MB, loads without a console
    error, and shows the confusion matrix computed here. (Its load time: `sysdl explore --browser-check`.)"""
    from models.training.checkpoint import load_model
    path = tmp_path / "explore.html"
    assert main(["explore", "--base", str(trained_small_checkpoint), "--pruned", "none", "--out", str(path),
                 "--no-track", "--no-progress"]) == 0
    assert path.stat().st_size < 30e6
    open_page(browser, path)
    model = load_model(trained_small_checkpoint)[0].eval()
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x in fashion_mnist.test.x.split(1000)])
    matrix = torch.bincount(fashion_mnist.test.y * 10 + pred, minlength=100).reshape(10, 10)
    assert torch.equal(shown_matrix(browser), matrix)
    assert grid_count(browser) == 10_000
    assert console_errors(browser) == []


def test_a_driver_that_cannot_start_the_browser_is_a_clean_error(tmp_path, monkeypatch):
    """A chromedriver that dies at once (as a version mismatch with chromium does): a BrowserError
    saying what to install, no selenium traceback."""
    from models.reports import browser as browser_module
    from models.reports.browser import BrowserError
    broken = tmp_path / "chromedriver"
    broken.write_text("#!/bin/sh\necho 'session not created: this driver supports chromium 1' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(browser_module, "chromium_paths", lambda: ("/usr/bin/chromium", str(broken)))
    with pytest.raises(BrowserError, match="could not start chromium.*same version"):
        with headless_chromium():
            pass
