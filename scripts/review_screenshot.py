"""Draw the review screen of the sample cheque for the README (docs/review.png), through chromium headless.

    python scripts/review_screenshot.py [--out docs/review.png]

The sample cheque (made by scripts/make_samples.py from formocr's own stroke renderer) is scanned with a review
threshold of 0.9999, so its fields need review, and `formocr review` is started on the results in a temporary
folder; Selenium opens the printed address in Debian's chromium (chromium-driver) and saves the first screen.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "docs" / "review.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cheque = Path(tmp) / "cheque.pdf"
        shutil.copy(HERE / "samples" / "cheque.pdf", cheque)
        results = Path(tmp) / "cheque.json"
        subprocess.run([sys.executable, "-m", "formocr", "scan", cheque.name, "--review-threshold", "0.9999",
                        "-o", results.name], check=True, cwd=tmp)
        proc = subprocess.Popen([sys.executable, "-m", "formocr", "review", results.name], stdout=subprocess.PIPE,
                                text=True, cwd=tmp)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            opts = webdriver.ChromeOptions()
            opts.binary_location = str(shutil.which("chromium"))
            for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,760",
                        "--hide-scrollbars"):
                opts.add_argument(arg)
            driver = webdriver.Chrome(options=opts,
                                      service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
            try:
                driver.get(url)
                WebDriverWait(driver, 10).until(
                    lambda d: d.find_element(By.ID, "crop").get_property("naturalWidth") > 0)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out))
            finally:
                driver.quit()
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
