#!/usr/bin/env python3
"""Times PyTorch's attention kernels on sqa-bench's shapes and writes sqa-bench CSV rows.

Backends (the CSV `backend` column):
  torch-sdpa-flash, torch-sdpa-cudnn, torch-sdpa-efficient
      torch.nn.functional.scaled_dot_product_attention forced onto one backend with
      torch.nn.attention.sdpa_kernel; `enable_gqa=True` where H_q != H_kv. SDPA has no
      sliding-window mode (only a dense N x N mask), so window variants are `unsupported` rows.
  torch-flex
      torch.nn.attention.flex_attention.flex_attention compiled with torch.compile, with a
      block mask from create_block_mask (causal, or causal sliding window); by default for the
      window variants only (`--flex-patterns all` adds causal and full).
  A backend that refuses a shape gives a row with status `unsupported` and its error text;
  out of memory gives `oom`. Without torch or without a GPU every row says so (status
  `unsupported`), the script does not crash.

Head mapping: as sqa-bench, effective head j reads query head j % H_q and key/value head
j / (H_eff / H_kv). For H_q >= H_kv that is SDPA's / flex's `enable_gqa` grouping. rSQA
(H_q < H_kv): Q is tiled to H_eff heads (`q.repeat`, as the published code does) once,
before timing, so the peer times plain H_eff-head attention; the copy is not timed.

Shapes: `--like CSV...` takes exactly the shapes of sqa-bench results files (what
ci/gpu-check.sh does), otherwise the same flags as `sqa-bench run` build the plan; head counts
come from `sqa-bench list --format csv`, never from a table restated here.

Timing: as sqa-bench's CUDA backend: warm-up runs, then timed runs until both --min-iters and
--min-time are reached, each run bracketed by CUDA events with the L2 cache flushed before it
(a write to a buffer of twice the L2 size); median, min, max, mean and coefficient of
variation. FLOPs (4 B H_eff d x visible pairs, counted exactly) and bytes (Q, K, V read and O
written once) follow src/cost.rs.

Output: `--out CSV` (or stdout), or `--run-dir DIR`: a run folder like sqa-bench's, with
`timings.csv` and `meta.json` (results::Meta), that `sqa-bench plot` and `read_rows` take.

`--dry-run` needs neither torch nor a GPU: it writes the planned rows (status `unsupported`,
error `dry run`), which is how `cargo test` checks the CSV schema on machines without a GPU.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# The columns of sqa_bench::results::Row, in order (tests/peers_script.rs checks them).
COLUMNS = [
    "backend", "device", "kernel", "scope", "variant", "heads_total", "heads_q", "heads_kv",
    "heads_eff", "d_model", "d_head", "batch", "seq_len", "dtype", "pattern", "window",
    "iters", "median_ms", "min_ms", "max_ms", "mean_ms", "cv", "flops", "tflops_per_s",
    "bytes", "gb_per_s", "peak_mem_bytes", "verified", "max_abs_err", "status", "error",
    "attn_flops_share", "attn_time_share",
]
SDPA = {"flash": "torch-sdpa-flash", "cudnn": "torch-sdpa-cudnn", "efficient": "torch-sdpa-efficient"}
FLEX = "torch-flex"
DEFAULT_WINDOW = 128  # sqa_bench::variant::DEFAULT_WINDOW, the published SWA(128)


class BadInput(Exception):
    """A flag or file the script cannot use: one line on stderr, exit status 2."""


def parse_length(text):
    """`4096`, or `Xk` = X * 1024, where the labels 65k, 131k, ... name powers of two (plan.rs)."""
    t = text.strip().lower()
    try:
        if t.endswith("k"):
            x = int(t[:-1])
            pow2 = [1 << e for e in range(10, 31) if (1 << e) // 1000 == x]
            n = pow2[0] if pow2 else x * 1024
        else:
            n = int(t)
    except ValueError:
        raise BadInput(f"'{text}' is not a sequence length (examples: 1024, 4k, 131k)") from None
    if n < 1:
        raise BadInput(f"sequence length '{text}' must be at least 1")
    return n


def visible_pairs(pattern, window, n):
    """Visible (query, key) pairs of one head, exactly as src/cost.rs counts them."""
    if pattern == "full":
        return n * n
    if pattern == "causal" or window >= n:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


class Shape:
    def __init__(self, variant, heads_total, hq, hkv, d_model, batch, n, dtype, pattern, window):
        if d_model % heads_total:
            raise BadInput(f"--d-model {d_model} is not divisible by --heads {heads_total}")
        self.variant, self.heads_total, self.hq, self.hkv = variant, heads_total, hq, hkv
        self.d_model, self.d_head = d_model, d_model // heads_total
        self.batch, self.n, self.dtype = batch, n, dtype
        self.pattern, self.window = pattern, window
        self.heff = max(hq, hkv)

    def key(self):
        return (self.variant, self.heads_total, self.hq, self.hkv, self.d_model, self.batch,
                self.n, self.dtype, self.pattern, self.window)

    def flops(self):
        return 4.0 * self.batch * self.heff * self.d_head * visible_pairs(self.pattern, self.window, self.n)

    def bytes(self):
        per_head = self.batch * self.n * self.d_head * 2  # bf16 and f16: 2 bytes
        return float(per_head * (self.hq + 2 * self.hkv + self.heff))


def variant_table(sqa_bench, heads):
    """Rows of `sqa-bench list --format csv --heads H`, keyed by variant key."""
    cmd = [sqa_bench, "list", "--format", "csv", "--heads", str(heads)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise BadInput(f"cannot run {sqa_bench} (give --sqa-bench PATH): {e}") from None
    if out.returncode != 0:
        raise BadInput(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return {r["key"]: r for r in csv.DictReader(out.stdout.splitlines())}


def plan_from_flags(a):
    table = variant_table(a.sqa_bench, a.heads)
    if a.variants.strip().lower() == "all":
        keys = list(table)
    else:
        keys = []
        for item in a.variants.split(","):
            wanted = item.strip().lower()
            match = [k for k, r in table.items() if wanted in (k, r["name"].lower())]
            if not match:
                raise BadInput(f"unknown variant '{item.strip()}' (known: {', '.join(table)})")
            if match[0] not in keys:
                keys.append(match[0])
    lengths = [parse_length(s) for s in a.seqlen.split(",")]
    if a.window < 1:
        raise BadInput("--window must be at least 1")
    plan = []
    for n in lengths:
        batch = a.batch if a.batch else max(1, a.tokens_per_step // n)
        for k in keys:
            r = table[k]
            if r["error"]:
                raise BadInput(f"variant {r['name']} with H = {a.heads}: {r['error']}")
            windowed = r["windowed"] == "yes"
            plan.append(Shape(k, a.heads, int(r["heads_q"]), int(r["heads_kv"]), a.d_model, batch, n,
                              a.dtype, "window" if windowed else a.mask, a.window if windowed else 0))
    return plan


def plan_from_csv(paths):
    """The distinct shapes of sqa-bench results files (or run folders), in file order."""
    plan, seen = [], set()
    for path in paths:
        if os.path.isdir(path):
            path = os.path.join(path, "timings.csv")
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise BadInput(f"cannot read {path}: {e}") from None
        plan_rows(path, rows, plan, seen)
    return plan


def plan_rows(path, rows, plan, seen):
    for i, r in enumerate(rows):
        try:
            s = Shape(r["variant"], int(r["heads_total"]), int(r["heads_q"]), int(r["heads_kv"]),
                      int(r["d_model"]), int(r["batch"]), int(r["seq_len"]), r["dtype"],
                      r["pattern"], int(r["window"]))
        except (KeyError, ValueError) as e:
            raise BadInput(f"{path}: row {i + 1} is not an sqa-bench row ({e})") from None
        if r["backend"] in SDPA.values() or r["backend"] == FLEX or s.key() in seen:
            continue
        seen.add(s.key())
        plan.append(s)


def base_row(s, backend, device, kernel, scope):
    return {
        "backend": backend, "device": device, "kernel": kernel, "scope": scope,
        "variant": s.variant, "heads_total": s.heads_total, "heads_q": s.hq, "heads_kv": s.hkv,
        "heads_eff": s.heff, "d_model": s.d_model, "d_head": s.d_head, "batch": s.batch,
        "seq_len": s.n, "dtype": s.dtype, "pattern": s.pattern, "window": s.window, "iters": 0,
        "median_ms": "", "min_ms": "", "max_ms": "", "mean_ms": "", "cv": "", "flops": s.flops(),
        "tflops_per_s": "", "bytes": s.bytes(), "gb_per_s": "", "peak_mem_bytes": "",
        "verified": "no", "max_abs_err": "", "status": "ok", "error": "",
        "attn_flops_share": 1.0, "attn_time_share": "",
    }


def with_stats(row, samples, peak):
    """Fills the statistics columns from timed durations in seconds (as measure.rs)."""
    med = statistics.median(samples)
    mean = statistics.fmean(samples)
    cv = statistics.stdev(samples) / mean if len(samples) > 1 and mean > 0 else 0.0
    row.update(iters=len(samples), median_ms=med * 1e3, min_ms=min(samples) * 1e3,
               max_ms=max(samples) * 1e3, mean_ms=mean * 1e3, cv=cv,
               tflops_per_s=row["flops"] / med / 1e12, gb_per_s=row["bytes"] / med / 1e9,
               peak_mem_bytes=peak)
    return row


class Torch:
    """Everything that touches torch; created only for real runs."""

    def __init__(self, a):
        import torch  # noqa: PLC0415 (optional dependency)

        self.torch, self.a, self.dev = torch, a, a.device
        self.version = f"torch {torch.__version__}"
        self.flex = None
        self.flush = None
        if self.dev == "cpu":  # for checking this script without a GPU; no peer figures
            self.device = platform.processor() or platform.machine()
            return
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        self.device = torch.cuda.get_device_name()
        props = torch.cuda.get_device_properties(0)
        self.flush = torch.empty(2 * max(props.L2_cache_size, 1 << 20), dtype=torch.uint8, device="cuda")

    def info(self):
        t = self.torch
        info = {"torch": t.__version__, "device": self.device}
        if self.dev == "cuda":
            props = t.cuda.get_device_properties(0)
            info.update(cuda=t.version.cuda, compute_capability=f"{props.major}.{props.minor}",
                        sm_count=props.multi_processor_count, l2_cache_bytes=props.L2_cache_size,
                        memory_bytes=props.total_memory)
        if t.backends.cudnn.is_available():
            info["cudnn"] = t.backends.cudnn.version()
        try:
            import triton  # noqa: PLC0415

            info["triton"] = triton.__version__
        except ImportError:
            pass
        return info

    def time(self, fn):
        t, a = self.torch, self.a
        for _ in range(a.warmup):
            fn()
        if self.dev == "cpu":
            samples = []
            while len(samples) < max(a.min_iters, 1000) and (len(samples) < a.min_iters or sum(samples) < a.min_time):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            return samples
        start, end = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        samples, total = [], 0.0
        sleep = getattr(t.cuda, "_sleep", None)
        while len(samples) < max(a.min_iters, 1000) and (len(samples) < a.min_iters or total < a.min_time):
            self.flush.zero_()
            if sleep is not None:
                # Keeps the GPU busy (~0.1 ms, untimed) while Python queues the call, so the
                # timing holds the kernels and not torch's dispatch latency.
                sleep(200_000)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
            total += samples[-1]
        return samples

    def inputs(self, s):
        t = self.torch
        dt = {"bf16": t.bfloat16, "f16": t.float16}[s.dtype]
        q = t.randn(s.batch, s.hq, s.n, s.d_head, dtype=dt, device=self.dev)
        k = t.randn(s.batch, s.hkv, s.n, s.d_head, dtype=dt, device=self.dev)
        v = t.randn(s.batch, s.hkv, s.n, s.d_head, dtype=dt, device=self.dev)
        if s.hq < s.hkv:  # rSQA: effective head j reads query head j % H_q
            q = q.repeat(1, s.heff // s.hq, 1, 1)
        return q, k, v

    def measure(self, row, s, make_fn):
        """Times make_fn(q, k, v)() into `row`; errors become row statuses."""
        t = self.torch
        cuda = self.dev == "cuda"
        try:
            if cuda:
                t.cuda.synchronize()
                t.cuda.reset_peak_memory_stats()
            base = t.cuda.memory_allocated() if cuda else 0  # the flush buffer
            q, k, v = self.inputs(s)
            fn = make_fn(q, k, v)
            samples = self.time(fn)
            return with_stats(row, samples, t.cuda.max_memory_allocated() - base if cuda else "")
        except t.cuda.OutOfMemoryError as e:
            row.update(status="oom", error=one_line(e))
        except (RuntimeError, ValueError, NotImplementedError, AssertionError) as e:
            # "No available kernel", unsupported head dimensions, compile failures.
            row.update(status="unsupported", error=one_line(e))
        except Exception as e:  # noqa: BLE001 (a row, never a crash)
            row.update(status="error", error=one_line(e))
        finally:
            if cuda:
                t.cuda.empty_cache()
        return row

    def sdpa(self, row, s, which):
        t = self.torch
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

        backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                   "efficient": SDPBackend.EFFICIENT_ATTENTION}[which]
        if which == "cudnn" and t.backends.cudnn.is_available():
            row["kernel"] = f"{self.version} cudnn {t.backends.cudnn.version()}"
        if s.pattern == "window":
            row.update(status="unsupported", error="SDPA has no sliding-window mode (only a dense mask); see torch-flex")
            return row
        kwargs = {"is_causal": s.pattern == "causal"}
        if s.hq > s.hkv:
            kwargs["enable_gqa"] = True

        def make(q, k, v):
            return lambda: t.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)

        with sdpa_kernel(backend):  # outside the timed calls: no Python overhead in the timing
            return self.measure(row, s, make)

    def flex_attention(self, row, s):
        t = self.torch
        from torch.nn.attention import flex_attention as fa  # noqa: PLC0415

        if self.flex is None:
            # One compiled graph per shape: room for every shape of a sweep.
            cfg = t._dynamo.config
            cfg.cache_size_limit = max(cfg.cache_size_limit, 256)
            if hasattr(cfg, "accumulated_cache_size_limit"):
                cfg.accumulated_cache_size_limit = max(cfg.accumulated_cache_size_limit, 1024)
            self.flex = t.compile(fa.flex_attention, dynamic=False)
        w = s.window
        mask_mod = None
        if s.pattern == "causal":
            def mask_mod(b, h, qi, ki):
                return qi >= ki
        elif s.pattern == "window":
            def mask_mod(b, h, qi, ki):
                return (qi >= ki) & (qi - ki < w)
        kwargs = {"enable_gqa": True} if s.hq > s.hkv else {}

        def make(q, k, v):
            if mask_mod is not None:
                try:
                    kwargs["block_mask"] = fa.create_block_mask(mask_mod, None, None, s.n, s.n, device=self.dev,
                                                                _compile=True)
                except TypeError:  # older torch without _compile
                    kwargs["block_mask"] = fa.create_block_mask(mask_mod, None, None, s.n, s.n, device=self.dev)
            return lambda: self.flex(q, k, v, **kwargs)

        return self.measure(row, s, make)


def one_line(e):
    text = f"{type(e).__name__}: {e}".strip()
    return " ".join(text.split())[:500]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--like", nargs="+", metavar="CSV", help="time the shapes of these sqa-bench timings.csv "
                   "files or run folders (instead of the shape flags)")
    p.add_argument("--variants", default="all", help="comma-separated variant keys, or all")
    p.add_argument("--seqlen", default="1k,2k,4k,8k,16k,32k,65k,131k", help="lengths, k = x1024 (131k = 2^17)")
    p.add_argument("--batch", type=int, help="batch at every length (else from --tokens-per-step)")
    p.add_argument("--tokens-per-step", type=int, default=131072, help="batch = max(1, T / length)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=16, help="H, the total number of heads")
    p.add_argument("--mask", choices=["causal", "full"], default="causal")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    p.add_argument("--dtype", choices=["bf16", "f16"], default="bf16")
    p.add_argument("--backends", default="flash,cudnn,efficient,flex", help="subset of flash,cudnn,efficient,flex")
    p.add_argument("--flex-patterns", choices=["window", "all"], default="window",
                   help="flex on the window variants only, or on every variant")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.2)
    p.add_argument("--scope", default="kernel")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu only checks this script on a machine without a GPU (no peer figures)")
    p.add_argument("--sqa-bench", default=None, help="the sqa-bench binary (default: target/release/sqa-bench)")
    p.add_argument("--out", help="CSV to write (default: stdout)")
    p.add_argument("--run-dir", help="run folder to create: DIR/timings.csv and DIR/meta.json")
    p.add_argument("--dry-run", action="store_true", help="write the planned rows without timing (no torch)")
    a = p.parse_args(argv)
    if a.sqa_bench is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        local = os.path.join(root, "target", "release", "sqa-bench")
        a.sqa_bench = local if os.path.exists(local) else "sqa-bench"
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    for b in backends:
        if b not in SDPA and b != "flex":
            raise BadInput(f"unknown backend '{b}' (known: flash, cudnn, efficient, flex)")
    a.backend_list = backends
    for name in ("batch", "tokens_per_step", "min_iters", "heads", "d_model"):
        value = getattr(a, name)
        if value is not None and value < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be at least 1")
    if a.warmup < 0 or not a.min_time >= 0:
        raise BadInput("--warmup and --min-time must not be negative")
    if a.out and a.run_dir:
        raise BadInput("--out and --run-dir exclude each other")
    if a.run_dir and os.path.exists(os.path.join(a.run_dir, "timings.csv")):
        raise BadInput(f"{a.run_dir} already holds a timings.csv")
    return a


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_output(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else None
    except OSError:
        return None


def write_meta(a, torch_env, started, finished):
    """meta.json in the schema of sqa_bench::results::Meta."""
    info = {"peers": "ci/peers.py", "timing": "CUDA events, L2 flushed before every timed run"}
    if torch_env is not None:
        info.update(torch_env.info())
    version = command_output([a.sqa_bench, "--version"]) or ""
    meta = {
        "backend": "torch",
        "device": torch_env.device if torch_env else "",
        "device_info": info,
        "crate_version": version.split()[-1] if version else "",
        "git_commit": command_output(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "HEAD"]),
        "command_line": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "seed": 0,
        "started_utc": started,
        "finished_utc": finished,
    }
    with open(os.path.join(a.run_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def main(argv):
    a = parse_args(argv)
    plan = plan_from_csv(a.like) if a.like else plan_from_flags(a)
    if not plan:
        raise BadInput("no shapes to time")
    for s in plan:
        if s.dtype not in ("bf16", "f16"):
            raise BadInput(f"{s.dtype}: the peers run bf16 and f16 only")

    torch_env, why = None, "dry run"
    if not a.dry_run:
        try:
            torch_env = Torch(a)
        except Exception as e:  # noqa: BLE001 (no torch, no GPU: rows say why)
            why = f"torch unavailable: {one_line(e)}"

    started = utc_now()
    path = a.out
    if a.run_dir:
        os.makedirs(a.run_dir, exist_ok=True)
        path = os.path.join(a.run_dir, "timings.csv")
        write_meta(a, torch_env, started, None)
    out = open(path, "w", newline="") if path else sys.stdout
    try:
        w = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for s in plan:
            for b in a.backend_list:
                if b == "flex" and a.flex_patterns == "window" and s.pattern != "window":
                    continue
                name = SDPA.get(b, FLEX)
                if torch_env is None:
                    row = base_row(s, name, "", "", a.scope)
                    row.update(status="unsupported", error=why)
                else:
                    row = base_row(s, name, torch_env.device, torch_env.version, a.scope)
                    try:
                        row = torch_env.flex_attention(row, s) if b == "flex" else torch_env.sdpa(row, s, b)
                    except Exception as e:  # noqa: BLE001 (an API this torch lacks: a row, not a crash)
                        row.update(status="unsupported", error=one_line(e))
                    median = row["median_ms"]
                    print(f"{name:22} {s.variant:8} N={s.n:<7} B={s.batch:<4} "
                          f"{median if median == '' else f'{median:.3f} ms'} {row['status']}", file=sys.stderr)
                w.writerow(row)
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    if a.run_dir:
        write_meta(a, torch_env, started, utc_now())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
