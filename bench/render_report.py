"""Open a report.html in headless Chromium and check that every plot image actually loaded.

    python bench/render_report.py [RUN_DIR | report.html] [--screenshot out.png]

With no argument, a fake run folder (the one tests/test_report.py builds) gets a fresh report.
The page is copied with a small script appended that, once the page has loaded, writes each
image's ``naturalWidth``/``naturalHeight`` into the DOM; ``chromium --dump-dom`` prints that DOM
and we read the numbers back. An image that failed to decode has naturalWidth 0. Exit 0 when
every image loaded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PROBE = """<script>
window.addEventListener('load', () => {
  const out = [...document.images].map(i => ({plot: i.dataset.plot || i.alt, complete: i.complete,
                                               w: i.naturalWidth, h: i.naturalHeight}));
  const pre = document.createElement('pre'); pre.id = 'image-probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no Chromium found (Debian: apt-get install -y chromium)")


def probe_images(html: Path, screenshot: Path | None = None, timeout: float = 60.0) -> list[dict]:
    """naturalWidth/Height of each image in ``html`` as Chromium loaded it."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        cmd = [chromium(), *FLAGS, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=5000"]
        # no LD_PRELOAD: the OpenBLAS preload meant for MLX has no business inside a browser
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_LIBRARY_PATH")}
        run = subprocess.run(
            [*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=timeout, env=env
        )
        if screenshot is not None:
            subprocess.run(
                [*cmd, f"--screenshot={screenshot.resolve()}", "--window-size=1200,1600", html.resolve().as_uri()],
                capture_output=True,
                timeout=timeout,
                env=env,
            )
    m = re.search(r'<pre id="image-probe">(.*?)</pre>', run.stdout, re.S)
    if not m:
        raise RuntimeError(f"Chromium printed no image probe (exit {run.returncode}): {run.stderr[-500:]}")
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _fake_run() -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_report import fake_run

    return fake_run(Path(tempfile.mkdtemp(prefix="report-demo-")) / "sam")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", nargs="?", help="A run folder (its report is rebuilt) or a report.html.")
    ap.add_argument("--screenshot", type=Path, help="Also save a PNG screenshot of the page here.")
    a = ap.parse_args()
    from mlx_persona.report.build import build_report

    target = Path(a.target) if a.target else _fake_run()
    html = target if target.suffix == ".html" else build_report(target)[1]
    images = probe_images(html, a.screenshot)
    for im in images:
        print(f"{im['plot']:<32} {'loaded' if im['w'] > 0 else 'FAILED'}  {im['w']}x{im['h']}")
    ok = bool(images) and all(im["w"] > 0 and im["h"] > 0 for im in images)
    print(f"{html}: {sum(im['w'] > 0 for im in images)}/{len(images)} images loaded")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
