"""Silero VAD (TorchScript) compressed by deepcompress vs plain uniform rounding; writes docs/benchmarks/silero.md.

Run: OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_silero.py
For 8, 6, 5 and 4 bits it compresses ../shared/models/silero_vad/silero_vad.jit
through ``deepcompress.compress`` (data-free, no pruning: weight sharing alone,
every parameter of >= 2 dims at the same bits) and, as the baseline, rounds every
such parameter to 2**bits uniform levels between its own min and max (per
tensor). Each model runs over ../shared/data/speech/silero_test.wav in 512-sample
chunks at 16 kHz (``model(chunk, 16000)`` after ``model.reset_states()``); a
frame is speech when its probability is >= 0.5. Reported: the share of frames
whose decision differs from the original model's, and the largest and mean
absolute probability change. Skips cleanly when the files are absent.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from _common import REPO, TODAY

SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "silero_vad" / "silero_vad.jit"
WAV = SHARED / "data" / "speech" / "silero_test.wav"
BITS = (8, 6, 5, 4)
CHUNK, RATE, THRESHOLD = 512, 16000, 0.5


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as fh:
        if fh.getframerate() != RATE or fh.getsampwidth() != 2 or fh.getnchannels() != 1:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        raw = fh.readframes(fh.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def probabilities(model, audio: np.ndarray) -> np.ndarray:
    import torch

    model.reset_states()
    out = []
    with torch.no_grad():
        for i in range(0, len(audio) - CHUNK + 1, CHUNK):
            out.append(float(model(torch.from_numpy(audio[i:i + CHUNK].copy())[None], RATE)))
    return np.array(out)


def uniform(model, bits: int):
    """Every float parameter of >= 2 dims rounded to 2**bits levels spanning its own [min, max]."""
    import torch

    out = copy.deepcopy(model)
    with torch.no_grad():
        for _, p in out.named_parameters():
            if p.dim() < 2:
                continue
            lo, hi = float(p.min()), float(p.max())
            step = (hi - lo) / (2**bits - 1) or 1.0
            p.copy_(torch.round((p - lo) / step) * step + lo)
    return out


SENSITIVITY_BITS = 8


def one_at_a_time(original, decoded: dict, audio: np.ndarray, ref: np.ndarray) -> list[tuple]:
    """(name, shape, relative RMS error, frames flipped, max abs probability change) of each weight tensor of
    the 16 kHz subnet put into the original model alone, from ``decoded`` (a shared-weight file's state dict);
    ``ref``: the original model's probabilities."""
    import torch

    state = {k: v.detach().clone() for k, v in original.state_dict().items()}
    ref_speech = ref >= THRESHOLD
    out = []
    for name, value in decoded.items():
        if "_8k" in name or value.dim() < 2 or torch.equal(value, state[name]):
            continue  # the 8 kHz subnet is not run here; exact tensors change nothing
        model = torch.jit.load(str(MODEL))
        model.load_state_dict({**state, name: value})
        p = probabilities(model, audio)
        err = float((value - state[name]).norm() / state[name].norm())
        out.append((name, tuple(value.shape), err, int(((p >= THRESHOLD) != ref_speech).sum()),
                    float(np.abs(p - ref).max())))
        print(out[-1], flush=True)
    return out


def main() -> None:
    if not (MODEL.is_file() and WAV.is_file()):
        print(f"skipped: {MODEL} or {WAV} is absent (see ../shared/data/README.md)")
        sys.exit(0)
    import torch

    import deepcompress

    torch.set_num_threads(1)
    audio = read_wav(WAV)
    original = torch.jit.load(str(MODEL))
    ref = probabilities(original, audio)
    ref_speech = ref >= THRESHOLD
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in BITS:
            path = Path(tmp) / f"silero{bits}.dcz"
            t0 = time.perf_counter()
            result = deepcompress.compress(original, path, sparsity="0", bits=str(bits), progress=False,
                                           log=lambda line: None)
            seconds = time.perf_counter() - t0
            shared = torch.jit.load(str(MODEL))
            deepcompress.load(path, model=shared)
            for method, model, ratio in (("deepcompress (k-means)", shared, result.compression_ratio),
                                         ("uniform per tensor", uniform(original, bits), None)):
                p = probabilities(model, audio)
                changed = float(np.mean((p >= THRESHOLD) != ref_speech))
                diff = np.abs(p - ref)
                rows.append((bits, method, changed, float(diff.max()), float(diff.mean()), ratio, seconds))
                print(rows[-1], flush=True)
            if bits == SENSITIVITY_BITS:
                single = one_at_a_time(original, deepcompress.load_state_dict(path), audio, ref)
    lines = [
        "# Silero VAD (TorchScript): per-frame speech decisions after compression",
        "",
        f"Measured {TODAY} with `OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_silero.py` on "
        f"`../shared/models/silero_vad/silero_vad.jit` and `../shared/data/speech/silero_test.wav` "
        f"({len(ref)} frames of {CHUNK} samples at 16 kHz, {100 * ref_speech.mean():.1f}% speech for the original).",
        "",
        "Both methods change only the parameters of >= 2 dims (conv, LSTM-cell and head weights; biases and the "
        "STFT basis buffer stay exact) at the same bits; deepcompress runs data-free with `sparsity=\"0\"` "
        "(weight sharing alone, one k-means codebook per tensor), so the two differ only in where the levels go. "
        "A frame is speech at probability >= 0.5; \"decisions changed\" is the share of frames whose decision "
        "differs from the original model's (same frames, paired).",
        "",
        "| bits | method | decisions changed | max abs prob change | mean abs prob change | file ratio (x fp32) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for bits, method, changed, dmax, dmean, ratio, _ in rows:
        r = f"{ratio:.1f}x" if ratio is not None else "-"
        lines.append(f"| {bits} | {method} | {100 * changed:.2f}% | {dmax:.3f} | {dmean:.4f} | {r} |")
    lines += ["", "The file ratio counts the whole .dcz file (both the 16 kHz and 8 kHz subnets, biases and "
              "buffers included) against the float32 parameters and buffers."]
    lines += ["", f"## One tensor at a time ({SENSITIVITY_BITS} bits)", "",
              f"Each weight tensor of the 16 kHz subnet taken from the {SENSITIVITY_BITS}-bit file above, every other "
              "parameter and buffer left exact: how many of the frames' decisions that one tensor's sharing flips on "
              "its own, and the relative RMS error the sharing adds to it (||shared - original|| / ||original||). "
              "It shows where the flips of the whole file come from, and whether keeping a few tensors exact would "
              "give a file with no flipped frame.", "",
              "| tensor | shape | relative RMS error | frames flipped (of all) | max abs prob change |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{name}` | {'x'.join(map(str, shape))} | {err:.4f} | {flips} ({100 * flips / len(ref):.2f}%) | "
              f"{dmax:.3f} |" for name, shape, err, flips, dmax in single]
    doc = REPO / "docs" / "benchmarks" / "silero.md"
    doc.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
