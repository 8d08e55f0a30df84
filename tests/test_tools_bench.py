"""benchmark_models.py, benchmark_scans.py and model_zoo.py in miniature runs: they finish, write
parseable JSON / CSV / PNG with the expected fields, and reject bad arguments with clear errors."""
import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vision_ssm.bench import kernels as bench_kernels

ROOT = Path(__file__).resolve().parents[1]
TINY_VMAMBA = ["vmamba_tiny_s1l8:dims=8", "vmamba_tiny_s1l8:depths=1,1,1,1"]
TINY_VIM = ["vim_tiny_patch16_224:embed_dim=16", "vim_tiny_patch16_224:depth=1"]
TINY_DEIT = ["deit_tiny_patch16_224:embed_dim=16", "deit_tiny_patch16_224:depth=1", "deit_tiny_patch16_224:num_heads=1"]


def _tool(name):
    """The tool's command line, vision_ssm.cli.NAME (tools/NAME.py and vssm-NAME call its main)."""
    return importlib.import_module(f"vision_ssm.cli.{name}")


@pytest.fixture(scope="module")
def tools():
    return {n: _tool(n) for n in ("benchmark_models", "benchmark_scans", "model_zoo", "benchmark_kernels")}


def test_cpu_peak_memory_sees_a_known_allocation():
    """A 32 MiB tensor shows as about 32 MiB of peak, also when a freed block of that size could
    have been reused from the heap (the timing setting keeps freed blocks)."""
    import torch
    from vision_ssm.bench.measure import peak_memory, steady_allocator
    size = 32 << 20
    steady_allocator()
    torch.ones(size // 4).sum()  # allocated and freed: kept by the heap under the steady setting
    for _ in range(2):
        peak = peak_memory(lambda: torch.ones(size // 4).sum(), torch.device("cpu"))
        assert 0.9 * size <= peak <= 1.25 * size, peak / 2 ** 20


def test_benchmark_kernels_tiny(tmp_path, tools, capsys):
    out = tmp_path / "k"
    tools["benchmark_kernels"].main(["--batch", "1", "--shapes", "vmamba_t_s1l8.stage4", "vim_t",
                                     "--backends", "ref", "torch", "--quick", "--out", str(out)])
    result = json.loads((out / "benchmark_kernels.json").read_text())
    printed = capsys.readouterr().out
    assert (out / "benchmark_kernels.png").stat().st_size > 0 and "vim_t" in printed
    rows = result["rows"]
    for shape in ("vmamba_t_s1l8.stage4", "vim_t"):
        for backend in ("ref", "torch"):
            assert any(r["shape"] == shape and r["backend"] == backend and r["pass_"] == "fwd+bwd" and r["ms"] > 0
                       and r["peak_mib"] > 0 for r in rows), (shape, backend)
    assert {(r["shape"], r["pass_"]) for r in result["ratios"]} >= {("vim_t", "fwd+bwd"), ("vmamba_t_s1l8.stage4", "fwd")}


def test_benchmark_kernels_larger_shapes_and_bad_names(tmp_path, tools, capsys):
    out = tmp_path / "k"
    tools["benchmark_kernels"].main(["--batch", "1", "--shapes", "vim_s", "--backends", "torch", "--quick",
                                     "--no-memory", "--out", str(out)])
    result = json.loads((out / "benchmark_kernels.json").read_text())
    (shape,) = result["shapes"]
    assert (shape["name"], shape["dim"], shape["d_state"], shape["directions"]) == ("vim_s", 768, 16, 2)
    assert result["copy_bandwidth"] is None and "bandwidth_frac" not in result["rows"][0]  # CPU: no ceiling
    by_name = {s.name: s for s in bench_kernels.larger_shapes(1)}
    assert by_name["vim_t.1248px"].length == 78 * 78 + 1
    with pytest.raises(SystemExit):
        tools["benchmark_kernels"].main(["--shapes", "vim_xl"])
    assert "'all'" in capsys.readouterr().err


def test_benchmark_models_cli_isolated(tmp_path):
    """The command line as the lead runs it: one subprocess per model."""
    out = tmp_path / "bm"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark_models.py"), "--models", "vmamba_tiny_s1l8",
         "--model-kwargs", "dims=8", "depths=1,1,1,1", "--sizes", "32", "--batch", "1", "--repeats", "1",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[1/1] VMamba-T[s1l8] @32 b1" in proc.stdout and "| VMamba-T[s1l8] | 32 |" in proc.stdout
    result = json.loads((out / "benchmark_models.json").read_text())
    assert result["isolate"] is True and result["batch"] == 1
    (row,) = result["rows"]
    assert not row.get("error"), row
    assert row["model"] == "vmamba_tiny_s1l8" and row["img_size"] == 32
    assert row["infer_ips"] > 0 and row["infer_ms"] > 0 and row["infer_peak_mib"] >= 0 and row["params"] > 0
    assert (out / "benchmark_models.png").stat().st_size > 0


def test_benchmark_models_pairs_and_ratios(tmp_path, tools, capsys):
    out = tmp_path / "bm"
    code = tools["benchmark_models"].main(
        ["--models", "vim_t", "deit_t", "--model-kwargs", *TINY_VIM, *TINY_DEIT, "--sizes", "32", "48",
         "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-isolate", "--train", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Vim-T/DeiT-T speed" in text and "Vim-T/DeiT-T speed (train)" in text
    result = json.loads((out / "benchmark_models.json").read_text())
    assert [(r["model"], r["img_size"]) for r in result["rows"]] == [
        ("vim_tiny_patch16_224", 32), ("vim_tiny_patch16_224", 48),
        ("deit_tiny_patch16_224", 32), ("deit_tiny_patch16_224", 48)]
    for row in result["rows"]:
        assert not row.get("error"), row
        assert {"infer_ips", "infer_peak_mib", "train_ips", "train_peak_mib", "params_m"} <= set(row)
    ratios = result["ratios"]
    assert [r["img_size"] for r in ratios] == [32, 48]
    assert all(r["pair"] == "Vim-T/DeiT-T" and r["infer_speed_ratio"] > 0 and r["train_speed_ratio"] > 0
               for r in ratios)
    assert [r["img_size"] for r in result["side_by_side"]] == [32, 48]


def test_benchmark_models_bad_arguments(tools, capsys):
    main = tools["benchmark_models"].main
    with pytest.raises(SystemExit) as exc:
        main(["--models", "vmamba_tiny_s1l9", "--sizes", "32"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'vmamba_tiny_s1l9'" in err and "vmamba_tiny_s1l8" in err
    tiny = ["--models", "vim_t", "--model-kwargs", *TINY_VIM, "--sizes", "32", "--repeats", "1", "--no-isolate"]
    with pytest.raises(SystemExit):
        main([*tiny, "--batch", "0"])
    assert "--batch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*tiny, "--pairs", "vim_t-deit_t"])
    assert "expected A:B" in capsys.readouterr().err


def test_benchmark_scans_with_training(tmp_path, tools, capsys):
    out = tmp_path / "bs"
    code = tools["benchmark_scans"].main(
        ["--scans", "local:window=2", "--model-kwargs", "dims=8", "depths=1,1,1,1",
         "--sizes", "32", "--batch", "1", "--repeats", "1", "--warmup", "0",
         "--train", "digits", "--epochs", "1", "--seeds", "0", "1", "--train-samples", "32", "--val-samples", "32",
         "--train-batch", "16", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "[train 2/2] scan=local:window=2 seed=1: top-1" in text and "±" in text
    result = json.loads((out / "benchmark_scans.json").read_text())
    assert result["scans"] == ["local:window=2"] and result["task"] == "digits" and result["seeds"] == [0, 1]
    (row,) = result["rows"]
    assert not row.get("error"), row
    assert row["scan"] == "local:window=2" and row["scan_spec"] == {"name": "local", "window": 2}
    assert row["directions"] == 4 and row["img_size"] == 32
    assert row["gflops"] > 0 and row["params"] > 0 and row["infer_ips"] > 0 and row["train_ips"] > 0
    assert row["infer_peak_mib"] >= 0 and row["train_peak_mib"] >= 0
    assert row["acc_n"] == 2 and 0 <= row["acc_mean"] <= 100 and row["acc_std"] >= 0
    (acc,) = result["accuracy"]
    assert [r["seed"] for r in acc["runs"]] == [0, 1] and acc["mean"] == row["acc_mean"]
    with open(out / "benchmark_scans.csv", newline="") as f:
        (line,) = list(csv.DictReader(f))
    assert line["scan"] == "local:window=2" and float(line["acc_mean"]) == pytest.approx(row["acc_mean"])
    assert "| local:window=2 | 4 | 32 |" in (out / "benchmark_scans.md").read_text()
    assert (out / "benchmark_scans.png").stat().st_size > 0


def test_benchmark_scans_several_scans_and_sizes(tmp_path, tools):
    out = tmp_path / "bs"
    code = tools["benchmark_scans"].main(
        ["--scans", "raster", "cross", "--model-kwargs", "dims=8", "depths=1,1,1,1", "--sizes", "32", "64",
         "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-flops", "--no-memory", "--no-train-throughput",
         "--out", str(out)])
    assert code == 0
    result = json.loads((out / "benchmark_scans.json").read_text())
    assert [(r["scan"], r["img_size"]) for r in result["rows"]] == [
        ("raster", 32), ("raster", 64), ("cross", 32), ("cross", 64)]
    rows = {r["scan"]: r for r in result["rows"]}
    assert rows["raster"]["directions"] == 1 and rows["cross"]["directions"] == 4
    assert rows["cross"]["params"] > rows["raster"]["params"]  # per-direction parameters
    assert all(r["infer_ips"] > 0 and "train_ips" not in r and "gflops" not in r for r in result["rows"])


def test_benchmark_scans_scaling(tmp_path, tools):
    out = tmp_path / "sc"
    code = tools["benchmark_scans"].main(
        ["--scaling", "--models", "vim_t", "deit_t", "--model-kwargs", *TINY_VIM, *TINY_DEIT,
         "--sizes", "32", "64", "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-isolate", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "benchmark_scaling.json").read_text())
    assert {r["model"] for r in result["rows"]} == {"vim_tiny_patch16_224", "deit_tiny_patch16_224"}
    assert all(r["infer_ms_per_image"] > 0 for r in result["rows"])
    exps = {e["model"]: e for e in result["exponents"]}
    assert set(exps) == {"vim_tiny_patch16_224", "deit_tiny_patch16_224"}
    assert all("time_exponent" in e for e in exps.values())
    assert (out / "benchmark_scaling.png").stat().st_size > 0


def test_benchmark_scans_pathfinder_options(tmp_path, tools, capsys):
    """--pathfinder-difficulty, --cache-dir and --train-options reach the training engine."""
    main = tools["benchmark_scans"].main
    common = ["--scans", "raster", "--model-kwargs", "dims=8", "depths=1,1,1,1", "--sizes", "32", "--batch", "1",
              "--repeats", "1", "--warmup", "0", "--no-flops", "--no-memory", "--no-train-throughput",
              "--train", "pathfinder", "--epochs", "1", "--seeds", "0", "--train-samples", "16",
              "--val-samples", "16", "--train-batch", "8", "--cache-dir", str(tmp_path / "cache"),
              "--out", str(tmp_path / "out")]
    assert main([*common, "--pathfinder-difficulty", "trivial", "--train-options", "smoothing=0", "drop_path=0.0"]) == 0
    assert len(list((tmp_path / "cache").glob("pathfinder-*.npz"))) == 2  # train and val, generated once
    capsys.readouterr()
    fresh = [*common[:-1], str(tmp_path / "bad")]
    with pytest.raises(SystemExit):  # a bad training setting stops the run before any measurement
        main([*fresh, "--pathfinder-difficulty", "impossible"])
    assert "trivial" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit):
        main([*common, "--train-options", "smoothin=0"])
    assert "unknown setting 'smoothin'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # each run sets its own seed: one for all would fake the spread
        main([*common, "--train-options", "seed=5"])
    assert "'seed' is set by each run" in capsys.readouterr().err


def test_benchmark_scans_repeated_flags_accumulate(tmp_path, tools):
    out = tmp_path / "bs"
    code = tools["benchmark_scans"].main(
        ["--scans", "raster", "--scans", "cross", "--model-kwargs", "dims=8", "--model-kwargs", "depths=1,1,1,1",
         "--sizes", "32", "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-flops", "--no-memory",
         "--no-train-throughput", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "benchmark_scans.json").read_text())
    assert result["scans"] == ["raster", "cross"] and result["model_kwargs"] == {"dims": 8, "depths": [1, 1, 1, 1]}


def test_scan_options_split_at_top_level_commas():
    from vision_ssm.bench.scans import _top_level_split, parse_scan
    assert _top_level_split("a=(1,2),b='x,y',c=[3,[4,5]]") == ["a=(1,2)", "b='x,y'", "c=[3,[4,5]]"]
    label, spec = parse_scan("local:window=2,directions=('row','col')")
    assert spec == {"name": "local", "window": 2, "directions": ("row", "col")}
    with pytest.raises(ValueError, match="--scans expects key=value"):
        parse_scan("cross:foo")


def test_benchmark_scans_bad_arguments(tools, capsys):
    main = tools["benchmark_scans"].main
    tiny = ["--model-kwargs", "dims=8", "depths=1,1,1,1", "--sizes", "32", "--batch", "1", "--repeats", "1",
            "--no-flops"]
    with pytest.raises(SystemExit) as exc:
        main([*tiny, "--scans", "crosss"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown scan 'crosss'" in err and "did you mean cross" in err and "hilbert" in err
    with pytest.raises(SystemExit):
        main([*tiny, "--scans", "local:windw=3"])
    assert "windw" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*tiny, "--model", "no_such_model"])
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*tiny, "--scans", "raster", "--train", "/no/such/dir"])
    assert "ImageFolder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # training settings without --train would be ignored
        main([*tiny, "--scans", "raster", "--lr", "0.1", "--seeds", "3"])
    assert "--seeds, --lr only apply with --train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--scaling", "--no-train-throughput"])
    assert "do not apply to --scaling" in capsys.readouterr().err


def test_model_zoo_tiny(tmp_path, tools, capsys):
    md = tmp_path / "model_zoo.md"
    md.write_text("# Zoo\n\nhand-written intro\n\n<!-- zoo:begin -->\nstale\n<!-- zoo:end -->\n\nhand-written end\n")
    cache = tmp_path / "cache.json"
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps(dict(device="NVIDIA H100", batch=128, amp="bf16", rows=[
        dict(model="vim_tiny_patch16_224", img_size=64, infer_ips=4321.0, train_ips=1234.0)])))
    args = ["--models", "vim_tiny_patch16_224", "--model-kwargs", "depth=1", "embed_dim=16", "--img-size", "64",
            "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-isolate", "--out", str(md),
            "--cache", str(cache), "--gpu-json", str(gpu)]
    main = tools["model_zoo"].main
    assert main(args) == 0
    text = md.read_text()
    assert text.startswith("# Zoo\n\nhand-written intro\n\n<!-- zoo:begin -->") and text.endswith(
        "<!-- zoo:end -->\n\nhand-written end\n")
    assert "stale" not in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| Vim-T |"))
    assert "✗ official 7,148,008" in line  # a 1-block Vim-T does not match the published count
    assert "4321" in line and "76.1" in line and "hustvl/Vim-tiny-midclstok" in line
    entry = json.loads(cache.read_text())["entries"]["vim_tiny_patch16_224"]
    assert entry["params"] > 0 and entry["gflops"] > 0 and entry["cpu_ips"] > 0
    assert entry["signature"] == dict(img_size=64, batch=1, threads=2, model_kwargs=dict(depth=1, embed_dim=16))
    capsys.readouterr()

    assert main(args) == 0  # from the cache, unchanged
    assert "cached" in capsys.readouterr().out
    assert json.loads(cache.read_text())["entries"]["vim_tiny_patch16_224"] == entry

    with pytest.raises(SystemExit):
        main(["--models", "deit_tiny_patch16_224", "--out", str(md), "--cache", str(cache), "--no-isolate",
              "--img-size", "32", "--batch", "1", "--repeats", "1"])
    assert "not in the zoo" in capsys.readouterr().err


def test_zoo_markers_created(tmp_path):
    from vision_ssm import zoo
    path = tmp_path / "new.md"
    zoo.update_markdown(path, "table v1")
    zoo.update_markdown(path, "table v2")
    assert path.read_text() == "# Model zoo\n\n<!-- zoo:begin -->\ntable v2\n<!-- zoo:end -->\n"
    broken = tmp_path / "broken.md"
    broken.write_text("<!-- zoo:end -->\n<!-- zoo:begin -->\n")
    with pytest.raises(ValueError, match="markers"):
        zoo.update_markdown(broken, "x")


def test_free_scan_stand_in_has_the_operator_shapes():
    """The zero-cost stand-in returns what the real operator returns, in shape and dtype, in each mode,
    and the backbones get the real operator back afterwards."""
    from vision_ssm.bench.models import free_selective_scan
    from vision_ssm.layers import bimamba, ss2d
    from vision_ssm.ops import selective_scan

    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    plain = (r(2, 3, 5), r(2, 3, 5), -torch.rand(3, 4), r(2, 4, 5), r(2, 4, 5))
    directional = (r(2, 3, 5), r(2, 2, 3, 5), -torch.rand(2, 3, 4), r(2, 2, 4, 5), r(2, 2, 4, 5))
    cases = [(plain, {}), (directional, {"merge": "sum"}), (directional, {"merge": "none"})]
    with free_selective_scan():
        assert ss2d.selective_scan is bimamba.selective_scan is not selective_scan
        for args, kw in cases:
            free = ss2d.selective_scan(*args, **kw)
            real = selective_scan(*args, **kw)
            assert free.shape == real.shape and free.dtype == real.dtype and not free.any()
    assert ss2d.selective_scan is selective_scan and bimamba.selective_scan is selective_scan


def test_benchmark_models_free_scan_rows(tmp_path, tools, capsys):
    out = tmp_path / "bm"
    code = tools["benchmark_models"].main(
        ["--models", "vim_t", "deit_t", "--model-kwargs", *TINY_VIM, *TINY_DEIT, "--sizes", "32", "--batch", "1",
         "--repeats", "1", "--warmup", "0", "--no-isolate", "--no-memory", "--free-scan", "--out", str(out)])
    assert code == 0
    rows = json.loads((out / "benchmark_models.json").read_text())["rows"]
    assert [(r["label"], r.get("free_scan", False)) for r in rows] == [("Vim-T (free scan)", True), ("DeiT-T", False)]
    assert all(not r.get("error") and r["infer_ips"] > 0 for r in rows)
    assert "Vim-T (free scan)/DeiT-T speed" in capsys.readouterr().out


def test_slow_call_is_timed_outside_the_peak_memory_call():
    """A call slower than the budget is timed once more under the steady allocator: the peak-memory
    call (every block fresh pages) never gives the timing."""
    from vision_ssm.bench.models import timed_with_peak

    calls = []

    def fn():
        calls.append(len(calls))
        torch.ones(1 << 16).sum()

    seconds, peak = timed_with_peak(fn, torch.device("cpu"), repeats=3, warmup=1, budget_s=0.0, memory=True)
    assert len(calls) == 2 and seconds > 0 and peak is not None


def test_kernel_plan_and_host_overhead_need_no_gpu(tools, capsys):
    rows = tools["benchmark_kernels"].run(["--plan", "--batch", "2", "--shapes", "vim_t", "--dtypes", "fp32"])
    assert {r["pass_"] for r in rows} == {"fwd", "train", "bwd"}
    assert all(r["programs"] == 2 * 2 * -(-384 // r["block_d"]) and r["state_loop"] == 16 for r in rows)
    assert "| vim_t | fp32 | bwd |" in capsys.readouterr().out
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the stubbed Triton wrapper runs on the CPU under the interpreter")
    rows = tools["benchmark_kernels"].run(["--host-overhead", "--batch", "1", "--shapes", "vmamba_t_s1l8.stage4",
                                            "--device", "cpu"])
    assert [r["pass_"] for r in rows] == ["fwd", "fwd+bwd"] and all(r["host_us"] > 0 for r in rows)


def test_first_call_tool_on_cpu(tmp_path):
    from vision_ssm.bench import first_call
    result = first_call.main(["--device", "cpu", "--batch", "1", "--img-size", "32", "--amp", "none",
                              "--model", "vmamba_tiny_s1l8", "--out", str(tmp_path / "f.json")])
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["first_step_s"] > 0 and saved["second_step_s"] > 0 and saved["model"] == "vmamba_tiny_s1l8"
    assert saved["process_to_first_step_end_s"] >= result["first_step_s"] and saved["import_s"] > 0


def test_benchmarks_page_is_generated_from_the_results(tools):
    """BENCHMARKS.md is what the renderer makes of the committed result files."""
    render = _tool("render_benchmarks")
    assert render.main(["--check"]) == 0, "BENCHMARKS.md is out of date: run python tools/render_benchmarks.py"


def test_tuning_choice_and_table_round_trip(tmp_path, monkeypatch):
    from vision_ssm.bench import tune
    from vision_ssm.ops.selective_scan import triton_config as tc
    a, b = tc.LaunchConfig(64, 8, 2), tc.LaunchConfig(32, 8, 1)
    times = {a: {"s1": 1.0, "s2": 4.0}, b: {"s1": 2.0, "s2": 1.0}}  # a: slowdowns 1 and 4; b: 2 and 1
    score = tune._geomean_slowdown(times, ["s1", "s2"])
    assert score[a] == pytest.approx(2.0) and score[b] == pytest.approx(2 ** 0.5)
    jobs = tune._jobs(tune.tuning_shapes(2), ("fp32",))
    assert len(jobs) == 2 * (len(tune.FWD_CANDIDATES) + 2 * len(tune.STEP_CANDIDATES))
    table = tmp_path / "tuned.json"
    monkeypatch.setattr(tc, "TABLE_PATH", table)
    result = dict(configs={"fwd": {"n1": {"4": b._asdict()}}}, device="X", date="d", torch="t", triton="tr",
                  batch=2, command="c")
    tune.write_table(result)
    assert tc.base_config("fwd", 1, 4) == b and tc.base_config("train", 1, 4) == tc.default_config("train", 1, 4)
    tc.load_table.cache_clear()
