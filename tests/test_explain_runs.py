"""helpers.explain as a researcher runs it: killed midway and started again, on two processes with torchrun
(gloo on the CPU), and with memory set by the batch, not by the data set. Equality is checked on the bytes
of the merged table and maps, not only on "it ran"."""
import gc
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from explain_job import BATCH, IMAGES, Noise, tiny_model
from helpers import saliency
from helpers.explain import explain_dataset

ROOT = Path(__file__).resolve().parent.parent
JOB = Path(__file__).with_name("explain_job.py")
# one thread per process, as torchrun sets it: the single-process reference must add up in the same order
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def job(out: Path, *options, processes: int = 1, wait: bool = True):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    started = subprocess.Popen([*launcher, str(JOB), str(out), *options], env=ENVIRONMENT, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait:
        output, _ = started.communicate(timeout=300)
        assert started.returncode == 0, output
    return started


def outputs(out: Path) -> dict[str, bytes]:
    """The merged results' bytes: the table and every method's maps."""
    files = [out / "metrics.parquet", *sorted((out / "maps").glob("*.npy"))]
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in files}


def batches_seen(out: Path, rank: int) -> list[list[int]]:
    """The image indices of each batch a rank explained, from its log of first pixels."""
    first_pixels = {f"{float(Noise()[i][0][0, 0, 0]):.6f}": i for i in range(IMAGES)}
    log = out.with_name(f"{out.name}.calls-{rank}.txt")
    return [[first_pixels[value] for value in line.split()] for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    job(out)
    return out


def test_a_run_killed_midway_resumes_and_ends_byte_for_byte_as_an_uninterrupted_one(reference, tmp_path):
    out = tmp_path / "run"
    killed = job(out, "--stall-at", "2", wait=False)
    stalled = out.with_name(f"{out.name}.stalled")
    deadline = time.monotonic() + 300
    while not stalled.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stalled.exists(), killed.communicate()[0]
    os.killpg(killed.pid, signal.SIGKILL)  # as an out-of-memory killer or a lost node would: no clean-up at all
    killed.wait()
    assert sorted(p.name for p in (out / "parts").glob("*.parquet")) == ["00000000.parquet", "00000004.parquet"]
    assert not (out / "metrics.parquet").exists()

    job(out)  # the same command again
    assert batches_seen(out, 0) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9],   # the killed run, stalled in batch 2
                                    [8, 9]]                               # the rerun: batch 2 only
    assert outputs(out) == outputs(reference)


def test_two_gloo_processes_share_the_batches_and_merge_to_the_single_process_result(reference, tmp_path):
    out = tmp_path / "run"
    job(out, processes=2)
    assert batches_seen(out, 0) == [[0, 1, 2, 3], [8, 9]]
    assert batches_seen(out, 1) == [[4, 5, 6, 7]]   # no image twice, no padding
    assert outputs(out) == outputs(reference)
    assert set(outputs(out)) == {"metrics.parquet", "maps/Grad-CAM.npy", "maps/index.npy", "maps/random.npy",
                                 "maps/saliency.npy"}


def live_tensor_bytes() -> int:
    """The bytes of every tensor storage Python can reach."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() touches deprecated torch.distributed objects, which warn
        warnings.simplefilter("ignore", FutureWarning)
        tensors = [t for t in gc.get_objects() if isinstance(t, torch.Tensor)]
    storages = {}
    for t in tensors:
        try:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        except RuntimeError:  # a FakeTensor that torch.compile, in an earlier test of this process, left behind
            pass              # holds no memory
    return sum(storages.values())


def test_memory_is_set_by_the_batch_not_by_the_data_set(tmp_path):
    """Twice the images, the same batch: the same largest batch in every layer and the same tensors alive at
    every batch; and each batch is on disk before the next one starts."""
    results = {}
    for count in (8, 16):
        out, model = tmp_path / str(count), tiny_model()
        seen, live, written = [], [], []

        def probe(model, x, target, out=out, live=live, written=written):
            live.append(live_tensor_bytes())
            written.append(len(list((out / "parts").glob("*.parquet"))))
            return saliency(model, x, target)

        hooks = [m.register_forward_pre_hook(lambda m, inputs, seen=seen: seen.append(len(inputs[0])))
                 for m in model.modules()]
        try:
            explain_dataset(model, Noise(count), {"probe": probe}, ["deletion", "insertion"], out=out,
                            batch_size=BATCH, save_maps=True, progress=False)
        finally:
            for hook in hooks:
                hook.remove()
        assert written == list(range(count // BATCH))
        results[count] = max(seen), live
    (largest_8, live_8), (largest_16, live_16) = results[8], results[16]
    assert largest_16 == largest_8 <= 8   # the batch, or a metric's chunk of perturbed copies (8 on a CPU)
    assert max(live_16) == max(live_8) and max(live_16[1:]) == max(live_16[1:2])
