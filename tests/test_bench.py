"""`localswap bench` runs every section end to end; the JSON keeps its keys (not its speeds)."""
import json
import subprocess
import sys

TRAIN_KEYS = {"batch", "precision", "width", "params", "model_step_s", "full_step_s",
              "full_over_model", "augment_s", "augment_share", "augment_faces_per_s", "eg_per_s",
              "step_gflop", "achieved_flops", "fraction_of_peak", "peak_memory_mb"}


def test_bench_tiny_json_schema(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "localswap", "bench", "--tiny", "--threads", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["schema"] == 1 and res["device_type"] == "cpu" and res["device"]
    m = res["machine"]
    for key in ("fp32_flops", "bf16_flops", "low_precision_peak_flops", "decode_fps",
                "decode_encode_fps"):
        assert m[key] > 0, key
    assert res["extraction"]["faces_kept"] == 12
    assert 0 < res["extraction"]["ratio_to_decode"]
    rows = {k: v for k, v in res["training"].items() if k != "seconds"}
    assert set(rows) == {"original_64", "localswap_64", "localswap_128"}
    for row in rows.values():
        assert TRAIN_KEYS <= set(row) and row["step_gflop"] > 0
    b = res["baseline"]
    assert b["baseline_gflop"] > b["batch"] * 10 and b["ratio"] > 0   # ~22.8 GFLOP per face
    c = res["conversion"]
    assert c["decode_encode_fps"] > 0
    for label in ("64px", "128px"):
        assert c[label]["frames"] == 12 and c[label]["fps"] > 0
        assert {"decode", "model", "encode"} <= set(c[label]["busy_ms_per_frame"])
    q = res["quality"]
    assert 0 < q["localswap_ssim_b"] <= 1 and 0 < q["baseline_ssim_b"] <= 1
    for name in ("machine", "extraction", "training", "baseline", "conversion", "quality"):
        assert name in r.stdout                                  # the readable table
