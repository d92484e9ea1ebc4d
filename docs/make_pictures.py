"""Regenerate the pictures in docs/ with the cnnlab command line.

    PYTHONPATH=src python docs/make_pictures.py --data-dir PATH/TO/mnist [--run RUN_DIR]

Every picture is made by one ``cnnlab`` command, printed as it runs.  The
MNIST pictures need a trained run: ``--run`` reuses one, otherwise a short
LeNet-5 run is trained first (10 epochs on the full training set, two to
five minutes on two cores) into ``runs/docs-mnist-lenet5``.  The input images (an MNIST test
digit, and a synthetic RGB scene drawn with NumPy) are written to
``docs/inputs/`` so every command can be repeated by hand.  Finally the PNGs
are re-encoded with a 256-colour palette to keep the folder small.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent


def cnnlab(*args) -> None:
    """Run ``python -m cnnlab ARGS`` from the repository root, showing the command."""
    shown = " ".join(str(a) if " " not in str(a) and ";" not in str(a) else repr(str(a)) for a in args)
    print(f"$ cnnlab {shown}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL)


def write_inputs(data_dir: Path) -> dict:
    """docs/inputs/seven.png (MNIST test image 0) and docs/inputs/scene.png (shapes on a gradient)."""
    sys.path.insert(0, str(ROOT / "src"))
    from cnnlab.data import load_mnist
    from cnnlab.explain.images import save_png
    out = DOCS / "inputs"
    out.mkdir(exist_ok=True)
    test = load_mnist(data_dir, "mnist", "test", download=False)
    seven = save_png(test.images[0], out / "seven.png")          # label 7
    h, w = 96, 128
    y, x = np.mgrid[0:h, 0:w]
    scene = np.stack([x / w, 0.6 * y / h, np.full((h, w), 0.3)])
    disk = (x - 40) ** 2 + (y - 48) ** 2 < 22 ** 2
    scene[:, disk] = np.array([0.95, 0.85, 0.1])[:, None]
    box = (x > 75) & (x < 115) & (y > 20) & (y < 75)
    scene[:, box] = np.array([0.1, 0.3, 0.9])[:, None]
    stripes = (y > 80) & (np.sin(x / 2.0) > 0)
    scene[:, stripes] = 0.9
    return {"seven": seven.relative_to(ROOT), "scene": save_png(scene, out / "scene.png").relative_to(ROOT)}


def shrink_pngs(paths) -> None:
    """Re-encode PNGs with an adaptive 256-colour palette (plots have few colours; 2-4x smaller)."""
    from PIL import Image
    for path in paths:
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding the MNIST IDX files")
    parser.add_argument("--run", help="a trained MNIST run directory to reuse")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).resolve()
    inputs = write_inputs(data_dir)
    seven, scene = inputs["seven"], inputs["scene"]
    run = Path(args.run).resolve() if args.run else ROOT / "runs" / "docs-mnist-lenet5"
    if run.is_relative_to(ROOT):
        run = run.relative_to(ROOT)  # the commands run in the repository root; pictures show short paths
    if not (ROOT / run / "model.json").is_file():
        cnnlab("train", "--dataset", "mnist", "--data-dir", data_dir, "--model", "lenet5", "--epochs", 10,
               "--out", run, "--quiet")
    d = "docs"
    made = []

    def pic(name, *command):
        cnnlab(*command)
        made.append(DOCS / name)

    # 1-2: the arithmetic, as the articles write it
    pic("conv_article_example.png", "explain", "conv", "--input", "0 1 2; 3 4 5; 6 7 8", "--kernel", "0 1; 2 3",
        "--output", f"{d}/conv_article_example.png")
    pic("conv_trained_filter.png", "explain", "conv", "--input", seven, "--run", run, "--layer", "0",
        "--channel", "3", "--positions", "14,14", "--output", f"{d}/conv_trained_filter.png")
    pic("pool_max.png", "explain", "pool", "--input", "1 0 2 3; 4 6 6 8; 3 1 1 0; 1 2 2 4", "--mode", "max",
        "--output", f"{d}/pool_max.png")
    # 3: classic filters
    pic("filter_sobel_x_rgb.png", "filter", scene, "--kernel", "sobel-x", "--output", f"{d}/filter_sobel_x_rgb.png")
    pic("filter_gaussian_rgb.png", "filter", scene, "--kernel", "gaussian", "--param", "sigma=2", "--padding",
        "same", "--output", f"{d}/filter_gaussian_rgb.png")
    pic("filter_laplacian_digit.png", "filter", seven, "--kernel", "laplacian", "--scale", "abs",
        "--output", f"{d}/filter_laplacian_digit.png")
    # 4: feature maps, kernels, flattened vector, probabilities (a few of the files the command writes)
    with tempfile.TemporaryDirectory() as tmp:
        cnnlab("explain", "features", run, seven, "--output-dir", tmp)
        keep = {"01_kernels_layer0.png": "features_kernels_layer0.png",
                "03_layer1_relu.png": "features_layer1_relu.png",
                "07_layer5_maxpool2d.png": "features_layer5_maxpool.png",
                "08_layer6_flatten.png": "features_layer6_flatten.png",
                "14_probabilities.png": "features_probabilities.png"}
        for src, dst in keep.items():
            shutil.copyfile(Path(tmp) / src, DOCS / dst)
            made.append(DOCS / dst)
    # 5: why this class
    pic("saliency_seven.png", "explain", "saliency", run, seven, "--output", f"{d}/saliency_seven.png")
    # 6: training and evaluation
    pic("curves.png", "explain", "curves", run, "--output", f"{d}/curves.png")
    pic("confusion.png", "explain", "confusion", run, "--output", f"{d}/confusion.png")
    pic("mistakes.png", "explain", "mistakes", run, "--count", 8, "--output", f"{d}/mistakes.png")
    # 7: the report, and how a browser shows its top
    report = ROOT / run / "report.html"
    cnnlab("report", run, "--output", run / "report.html")
    sys.path.insert(0, str(ROOT / "scripts"))
    import render_report
    if render_report.find_chromium():
        from PIL import Image
        with tempfile.TemporaryDirectory() as tmp:
            shot = render_report.render(report, Path(tmp) / "shot.png", 1300, 1700)
            with Image.open(shot) as im:
                im.resize((975, 1275), Image.LANCZOS).save(DOCS / "report_top.png")
        made.append(DOCS / "report_top.png")
        print(f"$ python scripts/render_report.py {run / 'report.html'} report.png --width 1300 --height 1700"
              "  (scaled to 75%)")
    else:
        print("no Chromium: skipped docs/report_top.png")
    shrink_pngs(made)
    total = sum(p.stat().st_size for p in made)
    print(f"{len(made)} pictures, {total / 1024:.0f} KB in {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
