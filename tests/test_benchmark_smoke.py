"""The benchmark's smoke mode (a tiny CNN, one round) runs, so benchmarks/run.py cannot rot.

Nothing here is timed: the benchmark reports speed, it does not fail on noise. What is asserted is
that every method has its row, that the ratios are finite numbers, and that each limit (and each
anchor that computes the same thing) returns what the helper returns, so a ratio compares equal work.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"Grad-CAM", "Grad-CAM++", "Smooth Grad-CAM++", "saliency", "SmoothGrad", "Integrated Gradients",
           "activation maximisation", "Deep Dream", "deletion & insertion", "randomisation cascade", "HiResCAM",
           "XGrad-CAM", "LayerCAM", "Eigen-CAM", "Score-CAM", "Ablation-CAM", "Occlusion"}


def test_smoke_run_reports_every_method_with_equal_work(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "results-cpu.json").read_text())
    rows = report["results"]

    for batch in (1, 2):
        assert {r["method"] for r in rows if r["batch"] == batch} == METHODS | ({"Grad-CAM top-5"} if batch == 1 else set())
    for row in rows:
        assert {"helper", "limit"} <= set(row["seconds"])
        assert all(math.isfinite(v) and v > 0 for v in row["ratio_to_limit"].values()), row
        for variant, difference in row["agreement"].items():
            assert difference < 1e-4, f"{row['method']}: {variant} differs from the helper by {difference:.1e}"
    assert all("limit" in r["agreement"] for r in rows if r["method"] not in ("activation maximisation", "Deep Dream"))
    assert next(r for r in rows if r["method"] == "Grad-CAM top-5")["one_call_to_five_calls"] > 0
    assert [(r["batch"], r["method"]) for r in rows if r["batch"] not in (1, 2)] == [(4, "explain_dataset")]

    if sys.platform == "linux":  # peak memory is measured from /proc
        assert all(v is not None and v >= 0 for r in rows if r["batch"] in (1, 2) for v in r["peak_mib"].values())
        assert {m["method"] for m in report["memory_only"]} == {"Smooth Grad-CAM++", "SmoothGrad", "Integrated Gradients"}
    explorer = report["explorer"]  # the Grad-CAM explorer's update costs
    assert all(math.isfinite(explorer[k]) and explorer[k] > 0 for k in ("class_change_seconds",
                                                                       "class_change_compute_seconds",
                                                                       "new_layer_seconds", "revisited_layer_seconds"))
    assert "| tiny | 1 | Grad-CAM |" in (tmp_path / "results-cpu.md").read_text()


def test_times_are_printed_with_one_unit():
    from benchmarks.report import duration

    assert [duration(s) for s in (0.0113, 9.99, 11.3)] == ["11.3 ms", "9990.0 ms", "11.3 s"]
