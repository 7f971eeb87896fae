"""The search page in a real headless Chromium against a real `qsearch serve` (Selenium + chromedriver).

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing); without
them the tests are skipped with the reason. QSEARCH_SCREENSHOTS=DIR keeps screenshots (the README's).
"""

import os
import shutil
from pathlib import Path

import pytest

from conftest import RunningServer
from qsearch import SearchEngine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="browser test needs Chromium: apt-get install -y chromium chromium-driver"
)
webdriver = pytest.importorskip("selenium.webdriver", reason="browser test needs selenium: pip install -e '.[test]'")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

NEW = "Which moon of Uranus is named after a character in The Tempest?"


@pytest.fixture()
def server(tmp_path, corpus_questions):
    SearchEngine.build(corpus_questions[:150], path=tmp_path / "idx").close()
    with RunningServer(tmp_path / "idx") as running:
        yield running


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(browser, condition, timeout: float = 20):
    """Poll ``condition`` until it holds. The page re-renders its lists as answers come, so an
    element read between two renders is stale: that poll counts as not yet, not as a failure."""
    return WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))


def results(browser) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .match-text")]


def screenshot(browser, name: str) -> None:
    folder = os.environ.get("QSEARCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / name))


def open_page(browser, server) -> None:
    """Load the page and wait until it has asked the server for its state."""
    browser.get(server.url + "/")
    wait_for(browser, lambda d: "questions known" in d.find_element(By.ID, "status").text)


def find_first(browser, text: str) -> None:
    """Type a stored question and wait until it is the first result."""
    type_question(browser, text)
    wait_for(browser, lambda d: results(d)[:1] == [text])


def type_question(browser, text: str) -> None:
    box = browser.find_element(By.ID, "ask")
    box.clear()
    box.send_keys(text)


def test_typing_finds_the_duplicate_then_posting_adds_a_question_the_next_search_finds(server, browser, corpus_questions):
    open_page(browser, server)
    assert not browser.find_element(By.ID, "results-note").is_displayed()
    known = corpus_questions[7]
    find_first(browser, known)
    first = browser.find_element(By.CSS_SELECTOR, "#results li")
    assert "duplicate" in first.text and "duplicate" in first.get_attribute("class")
    assert "a lower score can stand above a higher one" in browser.find_element(By.ID, "results-note").text
    screenshot(browser, "search.png")

    type_question(browser, NEW)
    browser.find_element(By.ID, "ask").send_keys(Keys.ENTER)  # keyboard only: Enter asks
    wait_for(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed())
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-title"
    browser.find_element(By.ID, "post-button").click()
    wait_for(browser, lambda d: "Posted as question #" in d.find_element(By.ID, "posted").text)
    new_id = browser.find_element(By.ID, "posted").text.split("#")[1].rstrip(".")

    type_question(browser, NEW + " ")
    wait_for(browser, lambda d: results(d)[:1] == [NEW])
    assert f"#{new_id}" in browser.find_element(By.CSS_SELECTOR, "#results li").text
    browser.find_element(By.ID, "ask-button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "confirm").is_displayed())
    browser.find_element(By.ID, "post-button").click()
    wait_for(browser, lambda d: "already here as #" + new_id in d.find_element(By.ID, "posted").text)


def test_the_page_says_which_words_the_model_read_as_others(server, browser):
    open_page(browser, server)
    type_question(browser, "How do I lern pyhton?")
    wait_for(browser, lambda d: d.find_element(By.ID, "read-as").text == "Read “lern” as “learn”, “pyhton” as “python”.")
    type_question(browser, "How do I learn Python?")
    wait_for(browser, lambda d: results(d) and not d.find_element(By.ID, "read-as").is_displayed())


def test_uploading_a_file_shows_its_clusters_and_offers_a_csv(server, browser, tmp_path):
    upload = tmp_path / "forum.txt"
    upload.write_text("How do I learn Python?\nWhat is the capital of Peru?\nHow can I learn Python?\nHow do I bake bread?\n")
    open_page(browser, server)
    assert not browser.find_element(By.ID, "download").is_displayed()  # nothing to download before a file is read
    browser.find_element(By.ID, "upload").send_keys(str(upload))
    browser.find_element(By.ID, "dedup-button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#clusters > li"))
    clusters = browser.find_elements(By.CSS_SELECTOR, "#clusters > li")
    assert len(clusters) == 1
    assert "How do I learn Python? (line 1)" in clusters[0].text and "How can I learn Python? (line 3)" in clusters[0].text
    assert "4 questions: 1 cluster of duplicates" in browser.find_element(By.ID, "dedup-summary").text
    link = browser.find_element(By.ID, "download")
    assert link.is_displayed() and link.get_attribute("href").startswith("blob:")
    screenshot(browser, "clusters.png")


def test_an_api_error_is_shown_as_a_message(server, browser):
    open_page(browser, server)
    too_many = "\n".join(f"Question number {n}?" for n in range(5001))  # set at once: typing it would take minutes
    browser.execute_script("document.getElementById('paste').value = arguments[0]", too_many)
    browser.find_element(By.ID, "dedup-button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "at most 5000" in browser.find_element(By.ID, "error").text


def test_a_moderator_removes_questions_by_number_and_by_text(server, browser, corpus_questions):
    open_page(browser, server)
    known = corpus_questions[7]
    find_first(browser, known)
    number = browser.find_element(By.CSS_SELECTOR, "#results li").text.split("#")[1].split()[0]
    box = browser.find_element(By.ID, "remove-list")
    box.send_keys(f"#{number}\n{corpus_questions[8]}\nWas this ever asked here?")
    browser.find_element(By.ID, "remove-button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "removed").text.startswith("Removed "))
    said = browser.find_element(By.ID, "removed").text
    assert f"#{number}" in said and "Not in the index: “Was this ever asked here?”." in said
    wait_for(browser, lambda d: results(d) and known not in results(d))  # the search on the page is run again
    type_question(browser, corpus_questions[8])
    wait_for(browser, lambda d: results(d) and corpus_questions[8] not in results(d))
