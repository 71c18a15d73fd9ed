"""The report of the small run: what it embeds, and what a real browser shows of it.

``snakemake --report`` is built once from the shared ``small_run`` (no extra
pipeline run).  The browser tests open it in Debian's headless Chromium, click
through it as a person would (menu, category, prompt, eye button, the *stage*
switch) and check every picture on screen: drawn from the very bytes of the
output file, at its own size, on top, and not blank in the screenshot.  A report of a
run whose prompts are full of reStructuredText has no docutils message and shows them
verbatim.
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.chromium import Browser, chromium_or_reason
from tests.support.configs import SMALL_CONFIG
from tests.support.runs import CONSOLE_LOG, run_snakemake
from tests.support.workspace import copy_workflow

pytestmark = pytest.mark.pipeline

PROMPTS = SMALL_CONFIG["prompts"]
SCREEN = (1400, 1000)


def image_ids(prompt_id: str) -> list[str]:
    return [f"{prompt_id}_{i:03d}" for i in range(PROMPTS[prompt_id]["n_images"])]


def expected_pictures() -> dict[str, str]:
    """Every picture the report must show -> its category: the contact sheets (they show
    the generated and the preprocessed images) and the charts, within figures' limits
    (the small run's few images are under them). The images themselves are no report
    items: their number would grow with the run's."""
    pictures = {}
    for prompt_id in PROMPTS:
        pictures[f"results/contact_sheets/{prompt_id}.png"] = "Contact sheets"
        for stem in image_ids(prompt_id):
            pictures[f"results/charts/{prompt_id}/{stem}.png"] = "Probabilities"
    # the small run's real images (evaluation.real): their confusion matrix
    pictures["results/evaluation/confusion_matrix.png"] = "Evaluation"
    return pictures


PAGES = {
    "results/summary.html": "Summary",
    "results/run_info.html": "Run info",
    "results/training/curve.png": "Training",
    "results/training/confusion_matrix.png": "Training",
}
DOWNLOADS = {"results/summary.csv": "Summary"}


def embedded(html: str, name: str) -> Any:
    """A JSON value the report's page script defines as ``var <name> = ...;``."""
    match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert match, f"the report defines no {name}"
    return json.loads(match.group(1))


def data_uri_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header[:80]
    return base64.b64decode(payload)


def report_of(finished_run: Path, folder: Path) -> Path:
    """``snakemake --report`` of a finished run, written outside its results/ (from a copy:
    a report locks the folder it runs in, and other workers copy the shared runs)."""
    finished = Path(shutil.copytree(finished_run, folder / "finished", symlinks=True))
    path = folder / "report.html"
    run_snakemake(finished, "--report", str(path))
    return path


@pytest.fixture(scope="module")
def report(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the small run."""
    return report_of(small_run, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def default_report(default_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of config/config.yaml as it is: what `make run && make report` makes."""
    return report_of(default_run, tmp_path_factory.mktemp("default_report"))


# ---- what the report file holds (no browser needed)


def test_report_embeds_every_picture_page_and_table(small_run: Path, report: Path) -> None:
    results = embedded(report.read_text(encoding="utf-8"), "results")
    wanted = {**expected_pictures(), **PAGES, **DOWNLOADS}
    assert sorted(results) == sorted(wanted)
    for path, entry in results.items():
        assert data_uri_bytes(entry["data_uri"]) == (small_run / path).read_bytes(), path
        assert entry["caption"].strip(), f"{path} has no caption"
    categories = embedded(report.read_text(encoding="utf-8"), "categories")
    assert sorted(categories) == [
        "Contact sheets",
        "Evaluation",
        "Probabilities",
        "Run info",
        "Summary",
        "Training",
    ]
    assert sorted(categories["Probabilities"]) == sorted(PROMPTS)


def test_labels_name_each_chart_and_sheet(report: Path) -> None:
    results = embedded(report.read_text(encoding="utf-8"), "results")
    for prompt_id in PROMPTS:
        for stem in image_ids(prompt_id):
            assert results[f"results/charts/{prompt_id}/{stem}.png"]["labels"] == {"image": stem}
    assert results["results/contact_sheets/city.png"]["labels"] == {"prompt": "city"}


def test_captions_say_what_each_item_is(small_run: Path, report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    results = embedded(html, "results")
    harbor = PROMPTS["harbor"]
    caption = results["results/contact_sheets/harbor.png"]["caption"]
    assert harbor["text"] in caption and "seed" in caption
    assert "results/predictions/city.json" in results["results/charts/city/city_000.png"]["caption"]
    assert PROMPTS["city"]["text"] in results["results/contact_sheets/city.png"]["caption"]
    # the training figures say the settings they were trained with (from the plan)
    training = SMALL_CONFIG["training"]
    curve = results["results/training/curve.png"]["caption"]
    assert f"each of {training['epochs']} epochs" in curve
    confusion = results["results/training/confusion_matrix.png"]["caption"]
    assert f"every {training['holdout_every']}th image" in confusion
    description = json.loads(re.search(r"var workflow_desc = (.*?);\n", html).group(1))
    for prompt in PROMPTS.values():
        assert prompt["text"] in description
    assert "the built-in demo" in description  # the demo model is said to be one
    summary = json.loads((small_run / "results" / "summary.json").read_text())
    held = summary["metrics"]["holdout"]
    assert held["n_images"] == 1  # city_002: every 3rd image of a labelled prompt
    assert f"Held-out accuracy {held['accuracy']:.3f}" in description, description[:800]
    # the real images' scores, and the least diverse prompts, on the front page
    evaluation = summary["evaluation"]
    assert f"Real accuracy {evaluation['real_accuracy']:.3f}" in description
    assert f"{evaluation['counts']['right']} of 4 real images" in description
    evaluation_caption = results["results/evaluation/confusion_matrix.png"]["caption"]
    assert f"({evaluation['counts']['right']} of 4)" in evaluation_caption
    for prompt_id in summary["diversity"]["least_diverse"]:
        assert f"<strong>{prompt_id}</strong>" in description


def test_run_info_page_agrees_with_the_manifest(small_run: Path) -> None:
    manifest = json.loads((small_run / "results" / "manifest.json").read_text())
    page = (small_run / "results" / "run_info.html").read_text(encoding="utf-8")
    assert f"<code>{manifest['config_sha256']}</code>" in page
    for name, version in manifest["versions"].items():
        assert f"<td>{name}</td><td><code>{version or 'not installed'}</code></td>" in page
    assert f"{len(manifest['files'])} files" in page
    assert "<td>matplotlib</td>" in page


def test_contact_sheet_per_prompt(small_run: Path) -> None:
    heights = {}
    for prompt_id in PROMPTS:
        with Image.open(small_run / "results" / "contact_sheets" / f"{prompt_id}.png") as sheet:
            assert sheet.width == 900
            heights[prompt_id] = sheet.height
            pixels = np.asarray(sheet.convert("RGB"), dtype=float)
        assert pixels.std() > 20  # pictures and text, not an empty canvas
    assert heights["city"] - heights["harbor"] == 240  # one row of 2.4 in per image


def test_generate_log_has_a_progress_trail_per_image(small_run: Path) -> None:
    steps = SMALL_CONFIG["generation"]["steps"]
    for prompt_id in PROMPTS:
        log = (small_run / "results" / "logs" / "generate" / f"{prompt_id}.log").read_text()
        assert "\r" not in log
        trail = rf"INFO sdcnn\.core\.progress: denoising: 100%\|#+\| {steps}/{steps} \["
        done = re.findall(trail, log)
        assert len(done) == PROMPTS[prompt_id]["n_images"]


def test_console_has_one_summary_line_per_prompt(small_run: Path) -> None:
    console = (small_run / CONSOLE_LOG).read_text(encoding="utf-8")
    for prompt_id, prompt in PROMPTS.items():
        lines = [line for line in console.splitlines() if line.startswith(f"{prompt_id}: ")]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"{prompt_id}: {prompt['n_images']} images, top: ")
        assert lines[0].endswith(f"contact sheet results/contact_sheets/{prompt_id}.png")


# ---- a real browser


CLICK_MENU = """(label => {
    const link = [...document.querySelectorAll('nav a')].find(a => a.textContent.trim() === label);
    if (link) link.click();
    return Boolean(link);
})(%s)"""

ROWS = "document.querySelectorAll('nav table tbody tr').length"

CLICK_ROW_EYE = """(index => {
    const row = document.querySelectorAll('nav table tbody tr')[index];
    row.querySelector('td:last-child a').click();  // the eye button
    return row.cells[0].textContent.trim();
})(%d)"""

IS_DOWNLOAD = (
    "document.querySelectorAll('nav table tbody tr')[%d]"
    ".querySelector('td:last-child a').hasAttribute('download')"
)

TOGGLE_VALUES = (
    "[...document.querySelectorAll('nav fieldset label')].map(l => l.textContent.trim())"
)

CLICK_TOGGLE = """(value => {
    const label = [...document.querySelectorAll('nav fieldset label')]
        .find(l => l.textContent.trim() === value);
    label.querySelector('input').click();
    return true;
})(%s)"""

# what the content area shows: the picture or page outside the menu, and whether it is on top
SHOWN = """(() => {
    const items = [...document.querySelectorAll('#app img, #app iframe')]
        .filter(element => !element.closest('nav'));
    return items.map(element => {
        const box = element.getBoundingClientRect();
        const style = getComputedStyle(element);
        const centre = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
        return {
            tag: element.tagName.toLowerCase(),
            src: element.src,
            complete: element.tagName === 'IMG' ? element.complete : true,
            natural: element.tagName === 'IMG'
                ? [element.naturalWidth, element.naturalHeight] : null,
            box: [box.x, box.y, box.width, box.height],
            visible: style.visibility === 'visible' && style.display !== 'none'
                && Number(style.opacity) > 0,
            onTop: centre === element,
        };
    });
})()"""

LOADED = "typeof app !== 'undefined' && document.querySelector('nav a') !== null"

# resolves once every picture of the content area is decoded and two frames were drawn
PAINTED = """(async () => {
    const images = [...document.querySelectorAll('#app img')].filter(e => !e.closest('nav'));
    await Promise.all(images.map(image => image.decode().catch(() => null)));
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    return true;
})()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable, reason = chromium_or_reason()
    if executable is None:
        pytest.skip(f"no headless browser for the report test: {reason}")
    chromium = Browser(executable, *SCREEN)
    yield chromium
    chromium.close()


def shown_item(browser: Browser, previous_src: str | None, screenshot: Path) -> dict[str, Any]:
    """The one picture or page the content area shows once it changed and settled, with a
    screenshot taken while its box stays where it is."""
    changed = f"(s => s.length === 1 && s[0].src !== {json.dumps(previous_src)})({SHOWN})"
    browser.wait_for(changed)
    browser.wait_for(f"{SHOWN}[0].complete")
    browser.evaluate(PAINTED)
    return settled(browser, screenshot)


def settled(browser: Browser, path: Path, tries: int = 30) -> dict[str, Any]:
    """What is shown once nothing changes any more (the same box and the same screenshot
    twice, 0.1 s apart): what a person sees once a transition or a late layout is over."""
    item = browser.evaluate(SHOWN)[0]
    item["screenshot"] = browser.screenshot(path)
    for _ in range(tries):
        time.sleep(0.1)
        again = browser.evaluate(SHOWN)[0]
        again["screenshot"] = browser.screenshot(path)
        if again["box"] == item["box"] and again["screenshot"] == item["screenshot"]:
            return again
        item = again
    return item


def click(browser: Browser, label: str) -> None:
    assert browser.evaluate(CLICK_MENU % json.dumps(label)), f"no menu entry {label!r}"


def walk_category(
    browser: Browser, url: str, category: str, screenshots: Path
) -> list[dict[str, Any]]:
    """Open the report, go to ``category``, show each of its items in turn; what was shown."""
    browser.open(url, LOADED)
    click(browser, category)
    subcategories = browser.evaluate(f"Object.keys(categories[{json.dumps(category)}])")
    shown: list[dict[str, Any]] = []
    current: str | None = None  # the src on display

    def show(action: str) -> dict[str, Any]:
        nonlocal current
        browser.evaluate(action)
        name = f"{category}-{len(shown):02d}.png".replace(" ", "_")
        item = shown_item(browser, current, screenshots / name)
        current = item["src"]
        return item

    for subcategory in sorted(subcategories):
        if len(subcategories) > 1:
            browser.open(url, LOADED)
            click(browser, category)
            click(browser, subcategory)
            current = None
        browser.wait_for(f"{ROWS} > 0")
        toggles = browser.evaluate(TOGGLE_VALUES)
        for index in range(browser.evaluate(ROWS)):
            if browser.evaluate(IS_DOWNLOAD % index):
                continue  # the CSV: its eye button downloads, there is nothing to look at
            shown.append(show(CLICK_ROW_EYE % index))
            for value in toggles[1:]:  # the same image at the other stage, and back
                shown.append(show(CLICK_TOGGLE % json.dumps(value)))
                show(CLICK_TOGGLE % json.dumps(toggles[0]))
    return shown


def screen_crop(screenshot: bytes, box: list[float]) -> np.ndarray:
    x, y, width, height = (round(value) for value in box)
    with Image.open(io.BytesIO(screenshot)) as image:
        return np.asarray(image.convert("RGB").crop((x, y, x + width, y + height)), dtype=float)


def file_pixels(data: bytes, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=float)


@pytest.mark.parametrize("category", ["Contact sheets", "Probabilities"])
def test_browser_shows_every_picture(
    browser: Browser, report: Path, small_run: Path, tmp_path: Path, category: str
) -> None:
    wanted = {path for path, cat in expected_pictures().items() if cat == category}
    by_bytes = {(small_run / path).read_bytes(): path for path in wanted}
    seen = []
    for item in walk_category(browser, report.as_uri(), category, tmp_path):
        assert item["tag"] == "img" and item["src"].startswith("data:image/png")
        data = data_uri_bytes(item["src"])
        assert data in by_bytes, "the browser shows a picture that is no output of the run"
        path = by_bytes[data]
        seen.append(path)
        with Image.open(io.BytesIO(data)) as image:
            assert item["natural"] == list(image.size), path  # decoded by the browser
        state = {key: item[key] for key in ("complete", "visible", "onTop", "box")}
        assert item["complete"] and item["visible"] and item["onTop"], (path, state)
        x, y, width, height = item["box"]
        assert width > 0 and height > 0 and x >= 0 and y >= 0, (path, item["box"])
        assert x + width <= SCREEN[0] and y + height <= SCREEN[1], (path, item["box"])
        on_screen = screen_crop(item["screenshot"], item["box"])
        expected = file_pixels(data, (on_screen.shape[1], on_screen.shape[0]))
        # the demo draws shapes on white (a prompt it has no shape for: near-blank), so
        # "not blank" is relative: the screen varies as much as the picture does
        assert expected.std() > 1, f"{path} is a uniform picture"
        assert on_screen.std() > 0.5 * expected.std(), f"{path} looks blank on screen"
        difference = np.abs(on_screen - expected).mean()
        assert difference < 10, f"{path}: the screen differs from the file by {difference:.1f}"
    assert sorted(seen) == sorted(wanted)  # each picture shown, once


@pytest.mark.parametrize("category", ["Summary", "Run info"])
def test_browser_shows_the_pages(
    browser: Browser, report: Path, small_run: Path, tmp_path: Path, category: str
) -> None:
    shown = walk_category(browser, report.as_uri(), category, tmp_path)
    wanted = [path for path, cat in PAGES.items() if cat == category]
    assert len(shown) == len(wanted) == 1
    item = shown[0]
    assert item["tag"] == "iframe" and item["visible"] and item["onTop"]
    assert data_uri_bytes(item["src"]) == (small_run / wanted[0]).read_bytes()
    for _ in range(50):  # the frame paints once its page has loaded
        screenshot = browser.screenshot(tmp_path / f"{category}.png")
        page = screen_crop(screenshot, item["box"])
        if page.std() > 10:
            break
        time.sleep(0.1)
    assert page.std() > 10, f"{wanted[0]} looks blank on screen"
    assert (page.min(axis=2) < 100).mean() > 0.002  # dark text on the page


def test_browser_lists_the_csv_for_download(
    browser: Browser, report: Path, small_run: Path
) -> None:
    browser.open(report.as_uri(), LOADED)
    click(browser, "Summary")
    links = browser.evaluate(
        "[...document.querySelectorAll('nav a[download]')].map(a => [a.download, a.href])"
    )
    assert [name for name, _ in links] == ["summary.csv"]
    assert data_uri_bytes(links[0][1]) == (small_run / "results" / "summary.csv").read_bytes()


def test_browser_landing_page_describes_the_run(
    browser: Browser, report: Path, tmp_path: Path
) -> None:
    browser.open(report.as_uri(), LOADED)
    text = browser.evaluate("document.querySelector('#app').innerText")
    for prompt in PROMPTS.values():
        assert prompt["text"] in text
    for category in ("Contact sheets", "Probabilities", "Summary", "Run info"):
        assert category in text
    screenshot = browser.screenshot(tmp_path / "landing.png")
    assert screen_crop(screenshot, [0, 0, *SCREEN]).std() > 10


def test_browser_default_report_has_no_docutils_message(
    browser: Browser, default_report: Path, tmp_path: Path
) -> None:
    """The landing page of the default run's report, as a person sees it: its description
    whole, and no docutils "System Message" box anywhere on it."""
    browser.open(default_report.as_uri(), LOADED)
    text = browser.evaluate("document.querySelector('#app').innerText")
    browser.screenshot(tmp_path / "default_landing.png")
    assert "System Message" not in text, text
    for entry in ("Contact sheets", "Probabilities", "Summary", "Run info", "Training"):
        assert f"{entry}:" in text  # each bullet of "Where to look", as its own line
    assert "Held-out accuracy" in text
    page = default_report.read_text(encoding="utf-8")
    assert "system-message" not in page and "System Message" not in page


def shown_text(markup: str) -> str:
    """What a browser shows of an HTML fragment, with runs of whitespace as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", markup)).split())


# ---- a real report of a run whose prompts are full of reStructuredText

RST_PROMPTS = {
    "weird_city-1": {
        "text": "A ``weird`` city *at |sunset| with a_b_ and back\\slash `ticks`",
        "negative_prompt": "- blurry, ..low quality::",
        "n_images": 1,
    },
    "notes_": {"text": "- .. harbor:: at dawn, [1]_ |x|_ **bold**::", "n_images": 1},
}


@pytest.fixture(scope="module")
def rst_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(report HTML, what ``snakemake --report`` printed) of a small finished run."""
    config = copy.deepcopy(SMALL_CONFIG)
    config["prompts"] = RST_PROMPTS
    config["classifier"]["weights"] = "glorot"  # no labels: nothing to train on
    workdir = copy_workflow(tmp_path_factory.mktemp("rst_run"), config)
    run_snakemake(workdir)
    report = workdir / "report.html"
    result = run_snakemake(workdir, "--report", str(report))
    return report.read_text(encoding="utf-8"), result.stdout + result.stderr


@pytest.mark.pipeline
def test_report_has_no_docutils_messages(rst_report: tuple[str, str]) -> None:
    page, printed = rst_report
    assert not re.search(r"\((INFO|WARNING|ERROR|SEVERE)/\d\)", printed), printed[-3000:]
    assert "System Message" not in page and "system-message" not in page


@pytest.mark.pipeline
def test_report_shows_the_prompts_verbatim(rst_report: tuple[str, str]) -> None:
    page, _ = rst_report
    results = embedded(page, "results")
    description = shown_text(json.loads(re.search(r"var workflow_desc = (.*?);\n", page)[1]))
    for prompt_id, prompt in RST_PROMPTS.items():
        texts = [prompt["text"], prompt.get("negative_prompt")]
        sheet = shown_text(results[f"results/contact_sheets/{prompt_id}.png"]["caption"])
        chart = shown_text(results[f"results/charts/{prompt_id}/{prompt_id}_000.png"]["caption"])
        assert f"prompt {prompt_id}: {prompt['text']}" in sheet
        assert prompt_id in chart
        assert f"{prompt_id}, 1 image: {prompt['text']}" in description
        for text in filter(None, texts):
            assert text in description
    for entry in results.values():
        assert "system-message" not in entry["caption"]
