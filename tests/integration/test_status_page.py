"""The status page (/xmetrics/v1/ui) in a real browser: Debian's headless Chromium, driven by
selenium through Debian's chromedriver, loads the page from a running xmetrics through a real
`kubectl proxy` (which authenticates to xmetrics with the kubeconfig's client certificate, as it
would to a cluster). The sparkline's points are checked against the gauge values sent over
DogStatsD, an invalid metric shows its error, the page updates itself, reads with JavaScript off,
and a screenshot is checked structurally (elements present, sizes sane), not pixel by pixel."""
import os
import re
import struct
import subprocess
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import KUBECTL, wait_for

from test_external_metrics import metric_path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def proxy(start_xmetrics):
    """xmetrics with a history sampled every second and gauges served as sent (.rollup(10): the
    last value of the current 10 s bucket), behind `kubectl proxy` on a loopback port."""
    xm = start_xmetrics("--ui-history-interval", "1s", "--rollup", "10")
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", xm.kubeconfig, "proxy", "--port", "0",
                             "--address", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    assert m, f"kubectl proxy printed {line!r}"
    yield xm, f"http://127.0.0.1:{m.group(1)}"
    proc.terminate()
    proc.wait(timeout=10)


def browser(javascript=True):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="xmetrics-chromium-")
    # The machine's network is closed: no background connections, updates or sync.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    if not javascript:
        opts.add_experimental_option("prefs",
                                     {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def served(xm, selector):
    status, _, body = xm.request(metric_path("page.queue", selector))
    return status, body


def send_and_wait(xm, value):
    """Sends the gauge until it is served: DogStatsD is UDP, and a loaded machine may drop a
    datagram (what is tested here is the page, not the transport). At most three sends."""
    expected = f'"value":"{value}"'
    for attempt in range(3):
        xm.send(f"page.queue:{value}|g|#queue:a")
        try:
            wait_for(lambda: expected in served(xm, "queue=a")[1], timeout=5,
                     what=f"page.queue to serve {value}")
            return
        except AssertionError:
            if attempt == 2:
                raise AssertionError(f"page.queue never served {value}: "
                                     f"{served(xm, 'queue=a')}; status {xm.status()['dogstatsd']}")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    return struct.unpack(">II", head[16:24])


def row(driver, metric, selector):
    return driver.find_element(
        By.CSS_SELECTOR, f'tr.metric[data-metric="{metric}"][data-selector="{selector}"]')


def test_the_status_page_in_a_browser(proxy, tmp_path):
    xm, base = proxy
    # Three values a few history samples apart, and a metric that has no data at all.
    send_and_wait(xm, 3)
    time.sleep(2.5)
    send_and_wait(xm, 8)
    time.sleep(2.5)
    send_and_wait(xm, 5)
    time.sleep(2.5)
    assert xm.request(metric_path("page.missing", "queue=a"))[0] == 404

    driver = browser()
    try:
        driver.get(base + "/xmetrics/v1/ui")
        assert driver.title == "xmetrics"
        header = driver.find_element(By.TAG_NAME, "header").text
        assert "standalone" in header and "single replica" in header, header

        queue = row(driver, "page.queue", "queue=a")
        spark = queue.find_element(By.CSS_SELECTOR, "svg.spark")
        values = [float(v) for v in spark.get_attribute("data-values").split()]
        # One point per history sample: the values sent, in order, each held for a few samples.
        distinct = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
        assert distinct == [3, 8, 5], values
        assert values.count(8) >= 2 and values.count(5) >= 2, values
        assert len(spark.find_element(By.TAG_NAME, "polyline").get_attribute("points").split()) \
            == len(values)
        assert queue.get_attribute("data-validity") == "valid"
        assert "5" in queue.find_element(By.CSS_SELECTOR, "td.value").text
        strip = queue.find_elements(By.CSS_SELECTOR, "svg.strip rect")
        assert strip and all(r.get_attribute("class") == "v-valid" for r in strip[-3:])

        missing = row(driver, "page.missing", "queue=a")
        assert missing.get_attribute("data-validity") == "error"
        error = missing.find_element(By.CSS_SELECTOR, ".error").text
        assert "no series matches" in error and "page.missing" in error, error
        last = missing.find_elements(By.CSS_SELECTOR, "svg.strip rect")[-1]
        assert last.get_attribute("class") == "v-error"
        assert "no series matches" in last.find_element(By.TAG_NAME, "title").get_attribute(
            "textContent")

        # The backends section names the embedded store as reachable.
        card = driver.find_element(By.CSS_SELECTOR, '.backend[data-backend="embedded"]')
        assert "reachable" in card.text
        # Two metrics with two different queries.
        assert "last refresh: 2 metrics, 2 distinct queries" in card.text, card.text

        # Structure and sizes of what was drawn, then of the screenshot itself.
        assert spark.size == {"width": 160, "height": 28}, spark.size
        table = driver.find_element(By.ID, "metrics")
        assert table.size["width"] > 600 and table.size["height"] > 60, table.size
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.metric")) == 2
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot))
        width, height = png_size(shot)
        assert (width, height) >= (1000, 600), (width, height)
        assert os.path.getsize(shot) > 10_000  # a rendered page, not a blank one

        # The script re-reads the page: a new value shows without a reload.
        send_and_wait(xm, 9)
        wait_for(lambda: row(driver, "page.queue", "queue=a").find_element(
            By.CSS_SELECTOR, "td.value b").text == "9", timeout=15, interval=0.5,
            what="the page to update itself to 9")
        assert driver.find_element(By.ID, "live").text.startswith("updated ")

        # A filter through the form's own parameters, as a click on it would send.
        driver.get(base + "/xmetrics/v1/ui?validity=invalid")
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.metric")
        assert [r.get_attribute("data-metric") for r in rows] == ["page.missing"]
        assert "filtered from 2" in driver.find_element(By.CSS_SELECTOR, "p.count").text
    finally:
        driver.quit()

    # With JavaScript off the page is the same server-rendered document, and says it will not
    # update by itself.
    driver = browser(javascript=False)
    try:
        driver.get(base + "/xmetrics/v1/ui")
        assert len(driver.find_elements(By.CSS_SELECTOR, "tr.metric")) == 2
        assert driver.find_element(By.ID, "live").text == "JavaScript is off: reload to update."
    finally:
        driver.quit()


def test_the_page_is_authenticated_like_the_rest(xmetrics):
    status, headers, body = xmetrics.request("/xmetrics/v1/ui")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert body.startswith("<!doctype html>")
    status, _, body = xmetrics.request("/xmetrics/v1/ui", client_cert=False)
    assert status == 401, body
