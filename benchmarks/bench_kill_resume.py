"""kill -9 at random points of ``deepcompress compress``, then ``--resume``; and a real full disk.

For each kill point: start ``compress`` on LeNet-300-100 trained on digits,
wait for its n-th progress line on stderr (n spread evenly over the reference
run's lines, so every stage gets kills whatever the machine's load), wait a
seeded random 0-0.15 s more, send SIGKILL, then check that

* the output path holds nothing, or a complete file identical to the reference
  (an uninterrupted run with the same seed): never a partial file;
* ``compress --resume`` exits 0 and writes exactly the reference bytes.

Left-over ``.NAME.*.tmp`` files (the atomic writer's temporary files, which a
SIGKILL cannot clean up) are counted and reported.

With ``--full-disk`` (root only: mounts a 64 KiB tmpfs, unmounted afterwards)
it also writes the output to a nearly full filesystem and checks for one
``error:`` line, exit code 2 and no partial output.

Run::

    cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_kill_resume.py --points 20
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COMPRESS_ARGS = ["--data", "digits", "--retrain-epochs", "3", "--finetune-epochs", "2", "--seed", "7"]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def deepcompress(*args: object) -> list[str]:
    """The command line of ``deepcompress ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "deepcompress.cli", *[str(a) for a in args]]


def train_model(folder: Path, epochs: int = 5) -> Path:
    """``deepcompress train lenet300 --data digits --epochs 5 -o m.pt``."""
    out = folder / "m.pt"
    subprocess.run(deepcompress("train", "lenet300", "--data", "digits", "--epochs", str(epochs), "-o", out),
                   check=True, capture_output=True, env=ENV, timeout=600)
    return out


@dataclass
class Timed:
    """A run's stderr lines with the time each arrived (seconds since start)."""

    returncode: int | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0


def run_compress(model: Path, out: Path, *extra: str, kill_at: tuple[int, float] | None = None) -> Timed:
    """Run compress, recording its stderr lines as they come.

    ``kill_at = (n, delay)``: SIGKILL it ``delay`` seconds after its ``n``-th stderr line
    (n = 0: after start). Kill points tied to progress lines land in every stage
    however loaded the machine is.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(deepcompress("compress", model, "-o", out, *COMPRESS_ARGS, *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    timed = Timed()
    reached = threading.Event()

    def reader() -> None:
        for line in proc.stderr:
            timed.lines.append((time.perf_counter() - t0, line.rstrip("\n")))
            if kill_at is not None and len(timed.lines) >= kill_at[0]:
                reached.set()
        reached.set()  # the run ended before that line

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    if kill_at is not None:
        if kill_at[0] == 0:
            reached.set()
        reached.wait(timeout=600)
        try:
            proc.wait(timeout=kill_at[1])
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=600)
    thread.join(timeout=10)
    timed.returncode = proc.returncode
    timed.seconds = time.perf_counter() - t0
    return timed


def stage_at(timed: Timed) -> str:
    """The last line the run printed: where it was when it ended."""
    return timed.lines[-1][1][:44] if timed.lines else "imports / model loading"


def temp_leftovers(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.tmp"))


@dataclass
class KillResult:
    after_line: int
    delay: float
    where: str
    killed: bool
    output_state: str  # "absent", "complete" or "PARTIAL"
    leftovers: int
    resume_ok: bool
    identical: bool


def kill_and_resume(model: Path, reference: bytes, folder: Path, point: tuple[int, float]) -> KillResult:
    folder.mkdir(parents=True)
    out = folder / "out.dcz"
    killed = run_compress(model, out, kill_at=point)
    was_killed = killed.returncode == -signal.SIGKILL
    if not out.exists():
        state = "absent"
    else:
        state = "complete" if out.read_bytes() == reference else "PARTIAL"
    leftovers = len(temp_leftovers(folder, out.name))
    resumed = run_compress(model, out, "--resume")
    ok = resumed.returncode == 0
    return KillResult(point[0], point[1], stage_at(killed), was_killed, state, leftovers, ok,
                      ok and out.is_file() and out.read_bytes() == reference)


def kill_points(n: int, seed: int, n_lines: int, max_delay: float = 0.15) -> list[tuple[int, float]]:
    """``n`` seeded kill points spread over a run that prints ``n_lines`` lines:
    (line to wait for, 0..n_lines-1 evenly, then a random delay up to ``max_delay`` s)."""
    rng = random.Random(seed)
    return [(i * n_lines // n, round(rng.uniform(0, max_delay), 3)) for i in range(n)]


def full_disk_check(model: Path, folder: Path) -> dict[str, object]:
    """Write the output to a 64 KiB tmpfs filled up to leave 1 KiB: expect one clear error line."""
    mount = folder / "tinyfs"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return {"skipped": f"cannot mount a tmpfs: {mounted.stderr.strip()}"}
    try:
        filler = mount / "filler"
        with open(filler, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 1024)
            except OSError:
                pass
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - 1024))
        out = mount / "out.dcz"
        timed = run_compress(model, out, "--work-dir", str(folder / "work"))
        errors = [line for _, line in timed.lines if line.startswith("error:")]
        return {
            "exit": timed.returncode,
            "error_lines": errors,
            "traceback": any("Traceback" in line for _, line in timed.lines),
            "output_exists": out.exists(),
            "leftovers": len(temp_leftovers(mount, out.name)),
        }
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--full-disk", action="store_true", help="also try a real full filesystem (needs root)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    try:
        t0 = time.perf_counter()
        model = train_model(root)
        ref_out = root / "reference" / "ref.dcz"
        ref_out.parent.mkdir()
        ref = run_compress(model, ref_out)
        if ref.returncode != 0:
            print("\n".join(line for _, line in ref.lines))
            return 1
        reference = ref_out.read_bytes()
        progress = [line for _, line in ref.lines if not line.startswith(("accuracy:", "size:"))]
        print(f"reference: {len(reference)} bytes in {ref.seconds:.2f} s, {len(progress)} progress lines on stderr")
        again = run_compress(model, root / "reference" / "again.dcz")
        print(f"second uninterrupted run identical: {(root / 'reference' / 'again.dcz').read_bytes() == reference}"
              f" ({again.seconds:.2f} s)")
        points = kill_points(args.points, args.seed, len(progress))
        results = []
        print("\n| # | kill | running when killed | output after kill | tmp files left | resume | identical |")
        print("|---|---|---|---|---|---|---|")
        for i, point in enumerate(points):
            r = kill_and_resume(model, reference, root / f"kill{i:02d}", point)
            results.append(r)
            print(f"| {i + 1} | {r.delay:.2f} s after line {r.after_line} | "
                  f"{r.where if r.killed else 'finished before the kill'} | "
                  f"{r.output_state} | {r.leftovers} | {'ok' if r.resume_ok else 'FAILED'} | "
                  f"{'yes' if r.identical else 'NO'} |", flush=True)
        killed = sum(r.killed for r in results)
        partial = sum(r.output_state == "PARTIAL" for r in results)
        identical = sum(r.identical for r in results)
        print(f"\n{len(results)} kill points ({killed} killed mid-run): partial outputs {partial}; "
              f"resumed runs identical to the reference {identical}/{len(results)}; "
              f"runs leaving a temporary file {sum(r.leftovers > 0 for r in results)}")
        status = 0 if partial == 0 and identical == len(results) else 1
        if args.full_disk:
            disk = full_disk_check(model, root)
            print(f"full disk: {disk}")
            if "skipped" not in disk and (disk["exit"] != 2 or len(disk["error_lines"]) != 1
                                          or disk["traceback"] or disk["output_exists"]):
                status = 1
        print(f"total {time.perf_counter() - t0:.0f} s")
        return status
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
