"""Write the committed sample scans and their ground truth (deterministic: fixed seeds).

    python scripts/make_samples.py [--out samples]

Every page comes from formocr's own stroke renderer (formocr.synth); no dataset image is used. Running it
again gives the same values, boxes and pixels (given the same numpy/OpenCV/Pillow versions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from formocr.layout.template import load_template
from formocr.synth import Degrade, SynthPage, Writer, render_form, save_pdf, save_tiff, write_truth

DPI = 300
SEEDS = {"cheque": 101, "envelope": 202, "numeric_form": 303, "forms_cheque": 404, "forms_envelope": 405}


def clear_writer(rng: np.random.Generator) -> Writer:
    """A random writer made legible: moderate forward slant, steady hand, digits that do not touch."""
    w = Writer.random(rng)
    return w.with_(
        slant=float(np.clip(w.slant, -0.2, 0.02)),
        pen=float(np.clip(w.pen, 0.11, 0.14)),
        jitter=min(w.jitter, 0.02),
        spacing=max(w.spacing, 0.28),
        baseline_wobble=min(w.baseline_wobble, 0.03),
        ink=min(w.ink, 45),
    )


def scan(skew: float, noise: float = 2.0, blur: float = 0.5, paper: int = 250) -> Degrade:
    """A mild, fixed degradation: a flatbed scan of a page laid slightly askew."""
    return Degrade(
        max_skew=0.0,
        skew_deg=skew,
        blur_sigma=(blur, blur),
        noise_std=(noise, noise),
        speckle=3e-5,
        lighting=(0.93, 0.93),
        paper=(paper, paper),
    )


def page(name: str, seed_key: str, values: dict[str, str] | None, degrade: Degrade) -> tuple[SynthPage, int]:
    seed = SEEDS[seed_key]
    rng = np.random.default_rng(seed)
    writer = clear_writer(rng)
    return render_form(load_template(name), values, rng, dpi=DPI, writer=writer, degrade=degrade), seed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("samples"))
    out: Path = ap.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)

    cheque, s = page(
        "cheque",
        "cheque",
        {"date": "03/11/2026", "amount": "1250.00", "account": "4027153968"},
        scan(1.5),
    )
    save_pdf([cheque.image], out / "cheque.pdf", DPI)
    write_truth(out / "cheque.truth.json", "cheque.pdf", [cheque], s)

    env, s = page("envelope", "envelope", {"postal_code": "518057"}, scan(-0.8, noise=0.0, blur=0.6))
    Image.fromarray(env.image, mode="L").save(out / "envelope.png", dpi=(DPI, DPI), optimize=True)
    write_truth(out / "envelope.truth.json", "envelope.png", [env], s)

    form, s = page("numeric_form", "numeric_form", None, scan(0.7, noise=1.5))
    save_pdf([form.image], out / "numeric_form.pdf", DPI)
    write_truth(out / "numeric_form.truth.json", "numeric_form.pdf", [form], s)

    p1, s1 = page("cheque", "forms_cheque", None, scan(-2.0, noise=0.0))
    p2, s2 = page("envelope", "forms_envelope", None, scan(2.5, noise=0.0))
    save_tiff([p1.image, p2.image], out / "forms.tiff", DPI)
    write_truth(out / "forms.truth.json", "forms.tiff", [p1, p2], [s1, s2])

    for f in sorted(out.iterdir()):
        if f.is_file():
            print(f"{f}  {f.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
