"""Quantizer benchmark: edgeloop's settings against onnxruntime's quantize_static (and aimet-onnx
when it is installed) on real trained models, at 8-bit weights and activations.

Models: the digits classifier of examples/digits (its own calibration and labelled validation
digits), three PaddleOCR models shipped in the `rapidocr-onnxruntime` wheel (`pip install
'.[bench]'`): text-line orientation (cls, 0/180 labels), text recognition (rec, CTC, exact-match
accuracy) and text detection (det, DB probability map), and ddddocr's glyph detector (YOLOX, 5.0 M
parameters, from the ddddocr wheel, fetched with `pip download --no-deps`). Their inputs are text rendered with
Pillow's built-in font, seeded, so every run sees the same images; calibration and evaluation
sets are disjoint. Every quantized model is evaluated by the same onnxruntime session settings on
the evaluation set: output SQNR and cosine against float, and task accuracy.

    .venv/bin/python -m bench.bench_quantize [--models digits,ocr_cls,ocr_rec,ocr_det,glyph_det] [--repeat N]
        [--settings "edgeloop tf + per-channel,onnxruntime MinMax per-channel"] [--json out.json]
        [--aimet-python /path/to/venv-with-aimet/bin/python]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFont

from deploy.container import load_container
from deploy.convert import convert
from deploy.inputlist import read_input_list, write_input_list
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.metrics import Agreement
from deploy.quantize.pipeline import feeds_from
from deploy.quantize.qdq import upgrade_opset
from deploy.quantize.runner import session

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "bench" / "quantize"
VOCABULARY = ("edge loop model phone quantize tensor layer range offset scale delta noise signal image text line "
              "android device kernel bundle cache float int8 calib 2024 7041 NPU DSP HTP GPU CPU Pixel Galaxy "
              "alpha beta gamma omega vector matrix channel depth width height batch epoch train test value")
WORDS = tuple(VOCABULARY.split())
# Calibration and evaluation inputs per OCR model: a real calibration set (issue 13), where the time
# per input, not the fixed cost of a quantization, decides.
CALIBRATION, EVALUATION = 200, 50
# onnxruntime's Entropy and Percentile calibrators hold every calibration input's activations until
# the end (HistogramCalibrater.collect_data): for 200 inputs about 2 GB on ocr_cls, but 34 GB on
# ocr_det and 40 GB on ocr_rec, more than this machine has; those two get MinMax only.
ORT_METHODS = ("MinMax", "Entropy", "Percentile")


@dataclass
class Task:
    name: str
    container: Path
    calib: Path
    evaluate: Path
    score: Callable[[list[np.ndarray]], float] | None = None  # outputs (eval order) -> accuracy
    accuracy_name: str = ""
    ort_methods: tuple[str, ...] = ORT_METHODS


@dataclass
class Row:
    model: str
    setting: str
    seconds: float
    sqnr_db: float
    cosine: float
    accuracy: float | None = None
    notes: list[str] = field(default_factory=list)


# ---- data ---------------------------------------------------------------------------------

def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _line_image(rng: np.random.Generator, text: str) -> Image.Image:
    size = int(rng.integers(26, 34))
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(4, 10))
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), int(rng.integers(200, 256)))
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=int(rng.integers(0, 70)), font=font)
    noise = rng.normal(0, 6, (image.height, image.width))
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)).convert("RGB")


def _normalise(image: Image.Image) -> np.ndarray:
    return ((np.asarray(image, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)


def _fit_line(image: Image.Image, height: int, width: int) -> np.ndarray:
    """PaddleOCR's resize: height fixed, width by aspect ratio (at most `width`), zero padding right."""
    w = min(width, int(np.ceil(height * image.width / image.height)))
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :w] = _normalise(image.resize((w, height), Image.BILINEAR))
    return out


def _text(rng: np.random.Generator, words: tuple[int, int] = (1, 3)) -> str:
    return " ".join(rng.choice(WORDS, int(rng.integers(*words))))


def _write_set(folder: Path, arrays: list[np.ndarray], name: str = "x") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, array in enumerate(arrays):
        array.astype(np.float32)[None].tofile(folder / f"{i:03d}.raw")
        entries.append({name: f"{i:03d}.raw"})
    write_input_list(folder / "input_list.txt", entries)
    return folder / "input_list.txt"


def _split(key: str, sets: list[np.ndarray], calib: int, name: str = "x") -> tuple[Path, Path]:
    """The first `calib` inputs calibrate, the rest evaluate: disjoint sets."""
    return _write_set(WORK / key / "calib", sets[:calib], name), _write_set(WORK / key / "eval", sets[calib:], name)


def _ocr_model(name: str) -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the OCR models need `pip install '.[bench]'` (rapidocr-onnxruntime)")
    return Path(spec.submodule_search_locations[0]) / "models" / name


def _ctc_accuracy(texts: list[str], charset: list[str]) -> Callable[[list[np.ndarray]], float]:
    def score(outputs: list[np.ndarray]) -> float:
        hits = 0
        for probs, want in zip(outputs, texts, strict=True):
            ids = probs[0].argmax(axis=-1)
            keep = [i for j, i in enumerate(ids) if i != 0 and (j == 0 or i != ids[j - 1])]
            hits += "".join(charset[i - 1] for i in keep if i - 1 < len(charset)) == want
        return hits / len(texts)
    return score


def _argmax_accuracy(labels: list[int]) -> Callable[[list[np.ndarray]], float]:
    return lambda outputs: float(np.mean([int(o.reshape(-1).argmax()) == y for o, y in zip(outputs, labels,
                                                                                           strict=True)]))


def digits_task() -> Task:
    folder = ROOT / "examples" / "digits"
    container = convert(folder / "digits_cnn.onnx", WORK / "digits" / "float.onnx").path
    labels = [int(x) for x in (folder / "validation" / "labels.txt").read_text().split()]
    return Task("digits", container, folder / "calibration" / "input_list.txt",
                folder / "validation" / "input_list.txt", _argmax_accuracy(labels), "top-1")


def ocr_cls_task(calib: int = CALIBRATION, count: int = EVALUATION) -> Task:
    rng = np.random.default_rng(11)
    sets, labels = [], []
    for _ in range(calib + count):
        image, flip = _line_image(rng, _text(rng)), int(rng.integers(0, 2))
        sets.append(_fit_line(image.rotate(180) if flip else image, 48, 192))
        labels.append(flip)
    container = convert(_ocr_model("ch_ppocr_mobile_v2.0_cls_infer.onnx"), WORK / "ocr_cls" / "float.onnx",
                        input_dims={"x": [1, 3, 48, 192]}).path
    return Task("ocr_cls (PP-OCR mobile v2 orientation)", container,
                *_split("ocr_cls", sets, calib),
                _argmax_accuracy(labels[calib:]), "0/180 accuracy")


def ocr_rec_task(calib: int = CALIBRATION, count: int = EVALUATION) -> Task:
    rng = np.random.default_rng(12)
    texts = [_text(rng, (1, 3)) for _ in range(calib + count)]
    sets = [_fit_line(_line_image(rng, t), 48, 320) for t in texts]
    source = _ocr_model("ch_PP-OCRv4_rec_infer.onnx")
    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    charset = [*meta["character"].splitlines(), " "]
    container = convert(source, WORK / "ocr_rec" / "float.onnx", input_dims={"x": [1, 3, 48, 320]}).path
    return Task("ocr_rec (PP-OCRv4 recognition)", container,
                *_split("ocr_rec", sets, calib),
                _ctc_accuracy(texts[calib:], charset), "exact text", ("MinMax",))


def _page(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A page of text lines stacked without overlap; returns it and each line's box (x0, y0, x1, y1)."""
    page = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(190, 256, 3)))
    boxes, y = [], int(rng.integers(2, 20))
    while True:
        line = _line_image(rng, _text(rng, (1, 4)))
        scale = rng.uniform(0.5, 1.0)
        line = line.resize((min(size - 4, max(8, int(line.width * scale))), max(8, int(line.height * scale))))
        if y + line.height > size:
            break
        x = int(rng.integers(0, max(1, size - line.width)))
        page.paste(line, (x, y))
        boxes.append((x, y, x + line.width, y + line.height))
        y += line.height + int(rng.integers(4, 30))
    return _normalise(page), boxes


def _box_recall(pages: list[list[tuple[int, int, int, int]]]) -> Callable[[list[np.ndarray]], float]:
    """A line counts as found when at least half of its box's central band is text (prob > 0.3,
    the threshold rapidocr's DB post-processing uses)."""
    def score(outputs: list[np.ndarray]) -> float:
        found = total = 0
        for probs, boxes in zip(outputs, pages, strict=True):
            text = probs[0, 0] > 0.3
            for x0, y0, x1, y1 in boxes:
                h, w = y1 - y0, x1 - x0
                band = text[y0 + h // 3: y1 - h // 3, x0 + w // 10: x1 - w // 10]
                found += band.size > 0 and band.mean() >= 0.5
                total += 1
        return found / total
    return score


def ocr_det_task(calib: int = CALIBRATION, count: int = EVALUATION, size: int = 320) -> Task:
    rng = np.random.default_rng(13)
    pages = [_page(rng, size) for _ in range(calib + count)]
    container = convert(_ocr_model("ch_PP-OCRv4_det_infer.onnx"), WORK / "ocr_det" / "float.onnx",
                        input_dims={"x": [1, 3, size, size]}).path
    return Task("ocr_det (PP-OCRv4 detection)", container, *_split("ocr_det", [p for p, _ in pages], calib),
                _box_recall([b for _, b in pages[calib:]]), "line recall", ("MinMax",))


# ddddocr's character detector: a YOLOX-style network of 5.0 M parameters at 416x416, shipped in
# the ddddocr wheel, which is only downloaded (its dependencies, OpenCV among them, are not needed).
DDDDOCR = "ddddocr==1.6.1"
GLYPHS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _wheel_model(requirement: str, member: str) -> Path:
    """`member` of the wheel of `requirement`, fetched once with `pip download --no-deps`."""
    folder = WORK / "wheels"
    target = folder / Path(member).name
    if not target.exists():
        name, version = requirement.split("==")
        wheels = sorted(folder.glob(f"{name}-{version}-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", str(folder)],
                           check=True)
            wheels = sorted(folder.glob(f"{name}-{version}-*.whl"))
        with zipfile.ZipFile(wheels[0]) as wheel:
            target.write_bytes(wheel.read(member))
    return target


def _glyph_page(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A click-captcha-like picture: 3-6 coloured glyphs on a noisy gradient, no two overlapping;
    returned as ddddocr feeds it (BGR, 0-255, CHW) with each glyph's box."""
    base = rng.integers(90, 230, 3)
    gradient = np.linspace(0, 1, size)[None, :, None] * rng.integers(-60, 60, 3)
    picture = Image.fromarray(np.clip(base + gradient + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8))
    draw, boxes = ImageDraw.Draw(picture), []
    for _ in range(int(rng.integers(3, 7))):
        glyph, font = str(rng.choice(list(GLYPHS))), _font(int(rng.integers(28, 56)))
        at = (int(rng.integers(10, size - 60)), int(rng.integers(10, size - 60)))
        box = draw.textbbox(at, glyph, font=font)
        if any(box[0] <= b[2] and b[0] <= box[2] and box[1] <= b[3] and b[1] <= box[3] for b in boxes):
            continue
        draw.text(at, glyph, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), font=font)
        boxes.append(box)
    return np.asarray(picture, np.float32)[:, :, ::-1].transpose(2, 0, 1).copy(), boxes


def _glyph_recall(pages: list[list[tuple[int, int, int, int]]], size: int) -> Callable[[list[np.ndarray]], float]:
    """A glyph counts as found when a prediction with score (objectness x class) above 0.3 has its
    centre inside the glyph's box; centres decoded as ddddocr's demo_postprocess does."""
    grids = [np.stack(np.meshgrid(np.arange(size // s), np.arange(size // s)), 2).reshape(-1, 2) * s
             for s in (8, 16, 32)]
    strides = np.concatenate([np.full(((size // s) ** 2, 1), s) for s in (8, 16, 32)])

    def score(outputs: list[np.ndarray]) -> float:
        found = total = 0
        for out, boxes in zip(outputs, pages, strict=True):
            centres = out[0, :, :2] * strides + np.concatenate(grids)
            centres = centres[out[0, :, 4] * out[0, :, 5:].max(axis=-1) > 0.3]
            for x0, y0, x1, y1 in boxes:
                inside = (centres[:, 0] >= x0) & (centres[:, 0] <= x1) & (centres[:, 1] >= y0) & (centres[:, 1] <= y1)
                found += bool(inside.any())
                total += 1
        return found / total
    return score


def glyph_det_task(calib: int = CALIBRATION, count: int = EVALUATION, size: int = 416) -> Task:
    rng = np.random.default_rng(14)
    pages = [_glyph_page(rng, size) for _ in range(calib + count)]
    container = convert(_wheel_model(DDDDOCR, "ddddocr/common_det.onnx"), WORK / "glyph_det" / "float.onnx").path
    return Task("glyph_det (ddddocr YOLOX detector, 5.0 M params)", container,
                *_split("glyph_det", [p for p, _ in pages], calib, "images"),
                _glyph_recall([b for _, b in pages[calib:]], size), "glyph recall", ("MinMax",))


TASKS = {"digits": digits_task, "ocr_cls": ocr_cls_task, "ocr_rec": ocr_rec_task, "ocr_det": ocr_det_task,
         "glyph_det": glyph_det_task}


# ---- evaluation ---------------------------------------------------------------------------

def _outputs(model: onnx.ModelProto, feeds) -> list[np.ndarray]:
    sess = session(model)
    name = model.graph.output[0].name
    return [sess.run([name], feed)[0] for feed in feeds]


def evaluate(task: Task, model: onnx.ModelProto, reference: list[np.ndarray]) -> tuple[float, float, float | None]:
    _, meta = load_container(task.container)
    outputs = _outputs(model, feeds_from(read_input_list(task.evaluate), meta, str(task.evaluate))())
    agreement = Agreement()
    for ref, out in zip(reference, outputs, strict=True):
        agreement.add(ref, out)
    return agreement.sqnr_db, agreement.cosine, task.score(outputs) if task.score else None


# ---- settings -----------------------------------------------------------------------------

EDGELOOP = {
    "edgeloop tf": QuantizeOptions(),
    "edgeloop tf + per-channel": QuantizeOptions(use_per_channel_quantization=True),
    "edgeloop enhanced": QuantizeOptions(param_quantizer="enhanced", act_quantizer="enhanced"),
    "edgeloop enhanced + per-channel": QuantizeOptions(param_quantizer="enhanced", act_quantizer="enhanced",
                                                       use_per_channel_quantization=True),
    "edgeloop enhanced activations + tf per-channel weights": QuantizeOptions(
        act_quantizer="enhanced", use_per_channel_quantization=True),
    "edgeloop enhanced + per-channel + cle": QuantizeOptions(
        param_quantizer="enhanced", act_quantizer="enhanced", use_per_channel_quantization=True,
        algorithms=("cle",)),
    "edgeloop enhanced + per-channel + cle + bc": QuantizeOptions(
        param_quantizer="enhanced", act_quantizer="enhanced", use_per_channel_quantization=True,
        algorithms=("cle", "bc")),
    **{f"edgeloop enhanced activations + tf per-channel weights + {' + '.join(algorithms)}": QuantizeOptions(
        act_quantizer="enhanced", use_per_channel_quantization=True, algorithms=algorithms)
       for algorithms in (("seqmse",), ("adaround",), ("seqmse", "adaround"))},
    "edgeloop enhanced activations + tf per-channel weights + adaround (5000 iterations)": QuantizeOptions(
        act_quantizer="enhanced", use_per_channel_quantization=True, algorithms=("adaround",),
        adaround_iterations=5000),
}

# Issue 13's time target: at most 1.0x onnxruntime quantize_static per-channel MinMax on the same
# calibration set; for tf + per-channel, and for enhanced + per-channel where reachable.
TIME_TARGETS = (("edgeloop tf + per-channel", "onnxruntime MinMax per-channel"),
                ("edgeloop enhanced + per-channel", "onnxruntime MinMax per-channel"),
                ("edgeloop tf", "onnxruntime MinMax per-tensor"))


def run_edgeloop(task: Task, name: str, options: QuantizeOptions) -> tuple[onnx.ModelProto, float]:
    target = WORK / task.name.split()[0] / f"{name.replace(' ', '_').replace('+', '')}.onnx"
    start = time.perf_counter()
    result = quantize(task.container, task.calib, target, options, cache=False)
    seconds = time.perf_counter() - start  # like the peers: reading the result back is not timed
    return load_container(result.path)[0], seconds


def run_onnxruntime(task: Task, method: str, per_channel: bool) -> tuple[onnx.ModelProto, float]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model, meta = load_container(task.container)
    source = WORK / task.name.split()[0] / "ort_input.onnx"
    onnx.save(upgrade_opset(model, 13), str(source))  # per-channel needs opset 13, as for edgeloop
    feeds = feeds_from(read_input_list(task.calib), meta, str(task.calib))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = feeds()

        def get_next(self):
            return next(self.feeds, None)

    target = source.with_name(f"ort_{method}_{'pc' if per_channel else 'pt'}.onnx")
    start = time.perf_counter()
    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))
    return onnx.load(str(target)), time.perf_counter() - start


def run_aimet(task: Task, python: Path, mode: str) -> tuple[onnx.ModelProto, float]:
    """aimet-onnx QuantSim (tf_enhanced, per-channel weights; `mode` adaround: AdaRound first), run by
    `python`, a separate environment that has aimet-onnx: it is a peer, never an edgeloop dependency."""
    target = WORK / task.name.split()[0] / f"aimet_{mode}.onnx"
    done = subprocess.run([str(python), "-m", "bench.aimet_peer", mode, str(task.container), str(task.calib),
                           str(target)], cwd=ROOT, capture_output=True, text=True, check=True)
    return onnx.load(str(target)), json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def bench(task: Task, repeat: int, aimet_python: Path | None, settings: set[str] | None = None) -> list[Row]:
    """Every setting once per round, `repeat` rounds: a load spike from elsewhere on the machine then
    hits all settings alike, and the median of each setting's rounds is compared. `settings`: only
    these (names as printed)."""
    model, meta = load_container(task.container)
    reference = _outputs(model, feeds_from(read_input_list(task.evaluate), meta, str(task.evaluate))())
    runs: dict[str, Callable[[], tuple[onnx.ModelProto, float]]] = {
        name: (lambda n=name, o=options: run_edgeloop(task, n, o)) for name, options in EDGELOOP.items()}
    for method in task.ort_methods:
        for per_channel in (False, True):
            runs[f"onnxruntime {method} {'per-channel' if per_channel else 'per-tensor'}"] = (
                lambda m=method, p=per_channel: run_onnxruntime(task, m, p))
    if aimet_python is not None:
        runs["aimet-onnx tf_enhanced per-channel"] = lambda: run_aimet(task, aimet_python, "tf_enhanced")
        runs["aimet-onnx tf_enhanced per-channel + adaround"] = lambda: run_aimet(task, aimet_python, "adaround")
    runs = {name: run for name, run in runs.items() if settings is None or name in settings}
    times: dict[str, list[float]] = {name: [] for name in runs}
    models: dict[str, onnx.ModelProto] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            models[name], seconds = run()
            times[name].append(seconds)
    rows = [Row(task.name, "float", 0.0, float("inf"), 1.0, task.score(reference) if task.score else None)]
    for name in runs:
        sqnr, cosine, accuracy = evaluate(task, models[name], reference)
        rows.append(Row(task.name, name, float(np.median(times[name])), sqnr, cosine, accuracy))
        print(f"  {name:55s} {rows[-1].seconds:7.3f} s  {sqnr:7.2f} dB  {cosine:.5f}  {accuracy}", flush=True)
    for ours, peer in TIME_TARGETS:
        if ours not in times or peer not in times:
            continue
        ratios = np.array(times[ours]) / np.array(times[peer])
        print(f"  time {ours} / {peer}: {np.median(times[ours]) / np.median(times[peer]):.2f} (ratio of medians); "
              f"per round median {np.median(ratios):.2f}, range {ratios.min():.2f}-{ratios.max():.2f}", flush=True)
    return rows


def table(rows: list[Row], tasks: dict[str, Task]) -> str:
    lines = ["| model | setting | quantize s | SQNR dB | cosine | accuracy |", "|---|---|---|---|---|---|"]
    for row in rows:
        task = next(t for t in tasks.values() if t.name == row.model)
        acc = "-" if row.accuracy is None else f"{row.accuracy:.3f} ({task.accuracy_name})"
        sqnr = "-" if row.setting == "float" else f"{row.sqnr_db:.2f}"
        seconds = "-" if row.setting == "float" else f"{row.seconds:.3f}"
        lines.append(f"| {row.model} | {row.setting} | {seconds} | {sqnr} | {row.cosine:.5f} | {acc} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(TASKS))
    parser.add_argument("--repeat", type=int, default=1, help="quantize each setting this many times (median)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--settings", help="comma-separated setting names to run (default: all)")
    parser.add_argument("--aimet-python", type=Path,
                        help="a Python with aimet-onnx installed: adds the aimet-onnx peer (bench/aimet_peer.py)")
    args = parser.parse_args()
    tasks = {}
    rows: list[Row] = []
    for key in args.models.split(","):
        tasks[key] = TASKS[key]()
        print(tasks[key].name, flush=True)
        rows += bench(tasks[key], args.repeat, args.aimet_python,
                      set(args.settings.split(",")) if args.settings else None)
    print(table(rows, tasks))
    if args.json:
        args.json.write_text(json.dumps([vars(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
