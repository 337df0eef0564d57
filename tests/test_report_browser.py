"""The report's pages in real Chromium (Debian's, headless): hover, click, search and select on the map;
sort and filter the study index; follow the links index -> run -> cluster -> image -> map and back;
compare two runs. No JavaScript errors, and no request leaves the machine."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import chromium_page
from test_report import CLUSTER, FILES, PROBABILITIES, add_seed_run, make_study, sha

from connote.evaluate.stability import adjusted_rand_index
from connote.reports import render_study


@pytest.fixture
def report(tmp_path):
    study, run_id = make_study(tmp_path, probabilities=PROBABILITIES)
    other = add_seed_run(study, 8, {r: (0 if c == 0 else -1) for r, c in CLUSTER.items()})
    index = render_study(study, progress=False)
    return study, run_id, other, index


class Offline:
    """Records every request; anything not file:// is aborted and remembered."""

    def __init__(self, page):
        self.remote: list[str] = []
        page.route("**/*", self.handle)

    def handle(self, route):
        url = route.request.url
        if url.startswith("file:"):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()


def shot(page, tmp_path, name: str):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    folder = os.environ.get("CONNOTE_REPORT_SCREENSHOTS")  # to look at them: =/tmp/shots
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, os.path.join(folder, path.name))


def point(page, sha_hex: str) -> tuple[float, float]:
    """Page coordinates of an image's point on the map."""
    x, y = page.evaluate(f"connoteMap.screen(connoteMap.index('{sha_hex}'))")
    box = page.locator("#map").bounding_box()
    return box["x"] + x, box["y"] + y


def test_map_hover_click_search_select(report, tmp_path):
    study, run_id, _, _ = report
    run_page = study.path / "report" / f"run-{run_id}" / "index.html"
    crimson, green = sha(FILES["crimson.png"]), sha(FILES["green.png"])
    with chromium_page(viewport={"width": 1300, "height": 1000}) as (page, errors):
        net = Offline(page)
        page.goto(run_page.as_uri())
        page.wait_for_function("window.connoteMap && connoteMap.n === 6")

        # hover: a tooltip with the thumbnail, the cluster and the start of the description
        page.mouse.move(*point(page, crimson))
        tip = page.locator("#tip")
        tip.wait_for(state="visible")
        assert "Cluster 0" in tip.inner_text() and "A crimson square" in tip.inner_text()
        assert tip.locator("img").get_attribute("src") == f"../thumbs/{crimson}.jpg"

        # click: the full description, and the model, prompt and cost of the call that wrote it
        page.mouse.click(*point(page, crimson))
        side = page.locator("#side")
        page.wait_for_function("document.querySelector('#side table.call') !== null")
        text = side.inner_text()
        assert "A crimson square with a small black mark." in text
        assert "gpt-4-turbo" in text and "$0.0123" in text and "Describe <this> image." in text
        assert (
            side.locator("a", has_text="Cluster 0").get_attribute("href") == f"cluster-0.html#img-{crimson}"
        )
        assert side.locator("#original").get_attribute("href") == (study.images_root / "crimson.png").as_uri()
        shot(page, tmp_path, "map-click")

        # an image whose description holds markup: shown as text
        page.mouse.click(*point(page, sha(FILES["café #1 ünïcode.png"])))
        page.wait_for_function("document.querySelector('#side p.text') !== null")
        original = page.locator("#original").get_attribute("href")
        assert original.endswith("caf%C3%A9%20%231%20%C3%BCn%C3%AFcode.png")
        page.mouse.click(*point(page, sha(FILES["red.png"])))
        page.wait_for_function(
            "document.querySelector('#side p.text') && document.querySelector('#side h2').textContent === 'red.png'"
        )
        assert '<script>alert("x")</script>' in side.locator("p.text").inner_text()

        # search: descriptions containing a phrase are highlighted (full texts, loaded on demand)
        page.fill("#search", "green")
        page.wait_for_function("document.getElementById('found').textContent.startsWith('2 of 6 match')")
        page.wait_for_function("!document.getElementById('found').textContent.includes('so far')")
        page.fill("#search", "not really a picture")  # beyond the start shown on hover? still found
        page.wait_for_function("document.getElementById('found').textContent.startsWith('1 of 6')")
        page.fill("#search", "")
        page.wait_for_function("document.getElementById('found').textContent === ''")

        # box selection (shift + drag) around the green cluster lists its images
        gx, gy = point(page, green)
        ux, uy = point(page, sha(FILES["café #1 ünïcode.png"]))
        page.keyboard.down("Shift")
        page.mouse.move(min(gx, ux) - 15, min(gy, uy) - 15)
        page.mouse.down()
        page.mouse.move((gx + ux) / 2, (gy + uy) / 2, steps=4)
        page.mouse.move(max(gx, ux) + 15, max(gy, uy) + 15, steps=4)
        page.mouse.up()
        page.keyboard.up("Shift")
        sel = page.locator("#selection a")
        assert green in {sel.nth(i).get_attribute("data-sha") for i in range(sel.count())}
        assert "Cluster 1" in side.inner_text()
        shot(page, tmp_path, "map-select")

        # a legend entry highlights its cluster and lists its images; a second click clears it
        page.click("#clearsel")
        page.click('#legend [data-cat="1"]')
        assert page.locator("#selection a").count() == 2
        page.click('#legend [data-cat="1"]')
        assert page.locator("#selection").count() == 0

        # zoom and pan keep working (and a wheel over the map does not scroll the page)
        before = page.evaluate(f"connoteMap.screen(connoteMap.index('{green}'))")
        page.mouse.move(gx, gy)
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(100)
        assert page.evaluate(f"connoteMap.screen(connoteMap.index('{green}'))") != before
        page.click("#reset")
    assert errors == []
    assert net.remote == []


def test_index_sort_filter_links_and_compare(report, tmp_path):
    study, run_id, other, index = report
    with chromium_page(viewport={"width": 1400, "height": 1000}) as (page, errors):
        net = Offline(page)
        page.goto(index.as_uri())
        rows = page.locator("#run-table tbody tr")
        assert rows.count() == 2
        shot(page, tmp_path, "index")

        # sort by number of clusters, both ways
        page.click("#run-table th:has-text('clusters')")
        assert rows.first.get_attribute("data-run") == str(other)
        page.click("#run-table th:has-text('clusters')")
        assert rows.first.get_attribute("data-run") == str(run_id)
        # filter
        page.fill("#filter", "seed=8")
        assert page.locator("#run-table tbody tr:visible").count() == 1
        assert page.locator("#shown").inner_text() == "1 of 2 runs"
        page.fill("#filter", "")

        # index -> run -> cluster -> image -> its point on the map -> back to the index
        page.click(f"#run-table a[href='run-{run_id}/index.html']")
        page.wait_for_function("window.connoteMap !== undefined")
        shot(page, tmp_path, "run")
        page.click("#cluster-table a[href='cluster-0.html']")
        assert "Cluster 0" in page.locator("h1").inner_text()
        crimson = sha(FILES["crimson.png"])
        tile = page.locator(f"#members #img-{crimson}")
        tile.locator("summary").click()
        assert "A crimson square" in tile.locator("p.text").inner_text()
        assert "gpt-4-turbo" in tile.inner_text()
        shot(page, tmp_path, "cluster")
        tile.locator("a", has_text="show on the map").click()
        page.wait_for_function("document.querySelector('#side table.call') !== null")
        assert "A crimson square" in page.locator("#side").inner_text()
        page.go_back()
        page.click("a:has-text('on the map')")  # the whole cluster on the map, listed beside it
        page.wait_for_function("document.querySelectorAll('#selection a').length === 3")
        page.click("nav.crumbs a:has-text('Study')")
        assert page.locator("#run-table").count() == 1

        # outliers have their own page
        page.goto((study.path / "report" / f"run-{run_id}" / "outliers.html").as_uri())
        assert "Outliers" in page.locator("h1").inner_text()

        # compare: which clusters of one run become which of the other
        page.goto((study.path / "report" / "compare.html").as_uri())
        page.select_option("#run-a", str(run_id))
        page.select_option("#run-b", str(other))
        page.wait_for_function("document.querySelector('#cmp-table tr[data-cluster=\"1\"]') !== null")
        flows = page.locator('#cmp-table tr[data-cluster="1"]').inner_text()
        assert "100% → outliers" in flows
        assert "100% → Cluster 0" in page.locator('#cmp-table tr[data-cluster="0"]').inner_text()
        # the other run keeps cluster 0 and makes the rest outliers: ARI of (0,0,0,1,1,-1) vs (0,0,0,-1,-1,-1)
        # = (index 4 - expected 4 * 6 / 15) / (max 5 - expected) = 0.706, as connote.evaluate computes it
        expected = adjusted_rand_index([0, 0, 0, 1, 1, -1], [0, 0, 0, -1, -1, -1])
        assert (
            page.locator("#agree").inner_text()
            == f"6 images in both runs · adjusted Rand index {expected:.3f}"
        )
        shot(page, tmp_path, "compare")
    assert errors == []
    assert net.remote == []


def test_markup_in_file_names_stays_text(tmp_path, monkeypatch):
    """A file named like HTML: escaped on every page, plain text on the map, no script ever runs."""
    import test_report as tr
    from test_report import png

    evil = '<img src=x onerror="document.title=1">.png'
    monkeypatch.setitem(tr.FILES, evil, png("purple"))
    monkeypatch.setitem(tr.CLUSTER, evil, 1)
    monkeypatch.setitem(tr.TEXT, evil, "A purple square </script><script>document.title=2</script>")
    monkeypatch.setitem(tr.VEC, evil, [0.05, 0.95, 0.0])
    study, run_id = make_study(tmp_path)
    render_study(study, progress=False)
    rep = study.path / "report"
    for page_file in rep.rglob("*.html"):
        text = page_file.read_text(encoding="utf-8")
        assert "<img src=x" not in text and "<script>document.title" not in text, page_file
    with chromium_page(viewport={"width": 1300, "height": 1000}) as (page, errors):
        net = Offline(page)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for url in (rep / f"run-{run_id}" / "cluster-1.html", rep / f"run-{run_id}" / "index.html"):
            page.goto(url.as_uri())
            page.wait_for_timeout(200)
        page.wait_for_function("window.connoteMap && connoteMap.n === 7")
        bad = tr.sha(tr.FILES[evil])
        page.mouse.move(*point(page, bad))
        page.locator("#tip").wait_for(state="visible")
        assert evil in page.locator("#tip").inner_text()
        page.mouse.click(*point(page, bad))
        page.wait_for_function("document.querySelector('#side p.text') !== null")
        assert "</script><script>" in page.locator("#side p.text").inner_text()
        page.fill("#search", "purple")
        page.wait_for_function("document.getElementById('found').textContent.startsWith('1 of 7')")
        assert page.title().startswith("connote") and not dialogs
        assert page.locator("#side img[src=x]").count() == 0
    assert errors == [] and net.remote == []
