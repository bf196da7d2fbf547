#!/usr/bin/env python3
"""PyTorch reference for kernelgrad's GPU benchmarks (cuDNN, cuBLAS), same cases, same JSON.

    python3 bench/reference/torch_ref.py --json torch.json [--quick] [--only PATTERN]

Writes the schema of bench/lib/schema.ts ('kernelgrad-bench/1'); bench/compare.ts merges it with
`npm run bench -- --device cuda --json ours.json` into one table (bench/gpu.sh does both).

PyTorch is raced at its best:
  * batch norm on NCHW (impl 'torch': cuDNN) and on channels-last tensors ('torch-cl');
  * each kernel timed two ways, the faster median kept: (a) CUDA events around one call with L2
    flushed before it (device time; the GPU is kept busy while Python enqueues, so launch cost is
    hidden), and (b) CUDA events around many back-to-back calls cycling through buffer sets that
    together exceed L2 (the method kernelgrad's side uses);
  * training eager ('torch') and with the whole step captured in a CUDA graph ('torch-graph',
    static input tensors, per the torch.cuda.graphs recipe); inference likewise;
  * cudnn.benchmark on; fp32 throughout (TF32 off for matmul and convolution, since kernelgrad
    computes in fp32 and the GEMM target is "cuBLAS fp32").
Shapes and labels mirror bench/lib/shapes.ts exactly: keep both in step.
"""
import argparse
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

# ---------------------------------------------------------------- shapes (bench/lib/shapes.ts)
BN_SHAPES = [
    ("64x20x26x26", (64, 20, 26, 26)),
    ("64x50x9x9", (64, 50, 9, 9)),
    ("64x128", (64, 128)),
    ("32x256x56x56", (32, 256, 56, 56)),
    ("256x64x112x112", (256, 64, 112, 112)),
]
BN_BYTES_PER_ELEM = {"bn.train_fwd": 12, "bn.infer_fwd": 8, "bn.backward": 20}
CONV_SHAPES = [
    ("L1 64x1x28x28 w20x1x3x3", (64, 1, 28, 28), (20, 1, 3, 3)),
    ("L2 64x20x13x13 w50x20x5x5", (64, 20, 13, 13), (50, 20, 5, 5)),
]
POOL_SHAPES = [("64x20x26x26", (64, 20, 26, 26)), ("64x50x9x9", (64, 50, 9, 9))]
GEMM_SHAPES = [("64x800x128", 64, 800, 128), ("4096^3", 4096, 4096, 4096)]  # label MxKxN
COPY_LABEL, COPY_ELEMS = "1GiB", 256 << 20
NET = dict(batch=64, infer_batch=1000, epoch_images=60000, lr=0.001, eps=1e-5,
           # the tutorial's moving = moving * 0.9 + batch * 0.1 is PyTorch's momentum 0.1
           torch_momentum=0.1, weight_scale=0.01,
           train_label="b64", infer_label="b1000", epoch_label="60000 b64")
ROTATE_BYTES = 256 * MiB  # working set of the back-to-back method (> 4x the H100/H200 L2)

DEV = torch.device("cuda")


# ---------------------------------------------------------------- timing
class Timer:
    def __init__(self, quick):
        self.quick = quick
        self.warmup = 3 if quick else 10
        self.reps = 10 if quick else 40
        self.flush_buf = torch.empty(ROTATE_BYTES // 4, dtype=torch.float32, device=DEV)

    def _flush(self):
        self.flush_buf.zero_()  # 256 MiB of writes evicts L2
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(1_000_000)  # keeps the GPU busy while Python enqueues the timed call

    def per_call(self, fn):
        """Median and min of CUDA-event times around single calls, L2 flushed before each."""
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(self.reps)]
        for s, e in ev:
            self._flush()
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        t = [s.elapsed_time(e) for s, e in ev]
        return statistics.median(t), min(t), len(t)

    def back_to_back(self, fns, min_sample_ms=1.0):
        """Median and min per call of CUDA-event times around batches of back-to-back calls that
        cycle through `fns` (one per buffer set)."""
        for i in range(max(self.warmup, len(fns))):
            fns[i % len(fns)]()
        torch.cuda.synchronize()
        # calibrate the batch size
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for i in range(len(fns)):
            fns[i]()
        e.record()
        torch.cuda.synchronize()
        one = max(s.elapsed_time(e) / len(fns), 1e-4)
        inner = max(len(fns), min(20000, int(min_sample_ms / one) + 1))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(self.reps)]
        k = 0
        for s, e in ev:
            s.record()
            for _ in range(inner):
                fns[k % len(fns)]()
                k += 1
            e.record()
        torch.cuda.synchronize()
        t = [s.elapsed_time(e) / inner for s, e in ev]
        return statistics.median(t), min(t), len(t)

    def best(self, make_fn, bytes_per_set):
        """Both methods; returns (median, min, reps, method note) of the faster median.
        make_fn() builds fresh buffers and returns the call."""
        sets = max(1, min(64, -(-ROTATE_BYTES // max(1, bytes_per_set))))
        fns = [make_fn() for _ in range(sets)]
        a = self.per_call(fns[0])
        b = self.back_to_back(fns)
        del fns
        if a[0] <= b[0]:
            return a[0], a[1], a[2], "one call per CUDA-event pair, L2 flushed"
        return b[0], b[1], b[2], f"back-to-back over {sets} buffer set(s)"

    def steps(self, fn, per_sample):
        """Median and min per call of CUDA-event times around `per_sample` calls of fn."""
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        reps = 5 if self.quick else 15
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for s, e in ev:
            s.record()
            for _ in range(per_sample):
                fn()
            e.record()
        torch.cuda.synchronize()
        t = [s.elapsed_time(e) / per_sample for s, e in ev]
        return statistics.median(t), min(t), reps


# ---------------------------------------------------------------- figures
FIGURES = []
ONLY = None


def wanted(case, shape, impl=None):
    if ONLY is None:
        return True
    impls = [impl] if impl else ["torch", "torch-cl", "torch-graph"]
    return any(ONLY.search(f"{case} {shape} {i}") for i in impls)


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def add(case, shape, impl, median=None, mn=None, reps=None, unit=None, value=None, note=None, status="ok"):
    f = {"case": case, "shape": shape, "impl": impl, "device": "cuda", "status": status}
    if median is not None:
        f.update(median_ms=median, min_ms=mn, reps=reps)
    if unit is not None:
        f["metric"] = {"unit": unit, "value": value}
    if note:
        f["note"] = note
    FIGURES.append(f)
    shown = f"{median:.4f} ms" if median is not None else ""
    if unit:
        shown += f" ({value:.1f} {unit})"
    log(f"  {case} {shape} {impl}: {status} {shown}")


def guarded(case, shape, impl, fn, force=False):
    """Runs fn when (case, shape, impl) is selected (or force); a failure becomes a 'failed' row."""
    if not force and not wanted(case, shape, impl):
        return
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure becomes a row
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        add(case, shape, impl, status="failed", note=msg)
        traceback.print_exc(file=sys.stderr)
    finally:
        torch.cuda.empty_cache()


def gbs(nbytes, ms):
    return nbytes / (ms * 1e6)


def gflops(flops, ms):
    return flops / (ms * 1e6)


# ---------------------------------------------------------------- cases
def case_copy(tm):
    def run():
        src = torch.rand(COPY_ELEMS, device=DEV)
        dst = torch.empty_like(src)
        med, mn, reps, _ = tm.best(lambda: (lambda: dst.copy_(src)), 1 << 40)
        add("ceiling.copy", COPY_LABEL, "torch", med, mn, reps, "GB/s", gbs(8 * COPY_ELEMS, med),
            "Tensor.copy_, device to device, bytes read + written")
    guarded("ceiling.copy", COPY_LABEL, "torch", run)


def case_gemm(tm):
    for label, m, k, n in GEMM_SHAPES:
        def run(m=m, k=k, n=n, label=label):
            def make():
                a = torch.rand(m, k, device=DEV) * 2 - 1
                b = torch.rand(k, n, device=DEV) * 2 - 1
                c = torch.empty(m, n, device=DEV)
                return lambda: torch.mm(a, b, out=c)
            med, mn, reps, how = tm.best(make, 4 * (m * k + k * n + m * n))
            add("gemm", label, "torch", med, mn, reps, "GFLOP/s", gflops(2 * m * n * k, med),
                f"cuBLAS fp32 (TF32 off); {how}")
        guarded("gemm", label, "torch", run)


def bn_inputs(shape, channels_last):
    x = torch.rand(shape, device=DEV) * 2 + 4  # U(4, 6), as ours
    dy = torch.randn(shape, device=DEV)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    return x, dy


def case_bn(tm):
    for label, shape in BN_SHAPES:
        numel = 1
        for d in shape:
            numel *= d
        c = shape[1]
        layouts = [("torch", False)] + ([("torch-cl", True)] if len(shape) == 4 else [])
        for impl, cl in layouts:
            layout = "channels-last" if cl else "NCHW"
            w = torch.randn(c, device=DEV) * 0.1 + 1
            b = torch.randn(c, device=DEV) * 0.1
            rm = torch.full((c,), 5.0, device=DEV)
            rv = torch.full((c,), 0.33, device=DEV)

            def train_fwd(impl=impl, cl=cl, w=w, b=b, rm=rm, rv=rv, label=label, shape=shape, numel=numel, layout=layout):
                def make():
                    x, _ = bn_inputs(shape, cl)
                    return lambda: F.batch_norm(x, rm, rv, w, b, True, NET["torch_momentum"], NET["eps"])
                med, mn, reps, how = tm.best(make, 8 * numel)
                add("bn.train_fwd", label, impl, med, mn, reps, "GB/s", gbs(12 * numel, med),
                    f"F.batch_norm(training=True), {layout}; {how}")

            def infer_fwd(impl=impl, cl=cl, w=w, b=b, rm=rm, rv=rv, label=label, shape=shape, numel=numel, layout=layout):
                def make():
                    x, _ = bn_inputs(shape, cl)
                    return lambda: F.batch_norm(x, rm, rv, w, b, False, NET["torch_momentum"], NET["eps"])
                med, mn, reps, how = tm.best(make, 8 * numel)
                add("bn.infer_fwd", label, impl, med, mn, reps, "GB/s", gbs(8 * numel, med),
                    f"F.batch_norm(training=False), {layout}; {how}")

            def backward(impl=impl, cl=cl, rm=rm, rv=rv, label=label, shape=shape, numel=numel, layout=layout, c=c):
                wg = (torch.randn(c, device=DEV) * 0.1 + 1).requires_grad_()
                bg = (torch.randn(c, device=DEV) * 0.1).requires_grad_()

                def make():
                    x, dy = bn_inputs(shape, cl)
                    x.requires_grad_()
                    y = F.batch_norm(x, rm, rv, wg, bg, True, NET["torch_momentum"], NET["eps"])
                    # dx, dgamma, dbeta, as ours; the graph is kept for repeated backward calls
                    return lambda: torch.autograd.grad(y, (x, wg, bg), dy, retain_graph=True)
                med, mn, reps, how = tm.best(make, 16 * numel)
                add("bn.backward", label, impl, med, mn, reps, "GB/s", gbs(20 * numel, med),
                    f"autograd.grad of F.batch_norm(training=True): dx, dgamma, dbeta, {layout}; {how}")

            guarded("bn.train_fwd", label, impl, train_fwd)
            guarded("bn.infer_fwd", label, impl, infer_fwd)
            guarded("bn.backward", label, impl, backward)


def case_conv(tm):
    for label, xs, ws in CONV_SHAPES:
        n, c, h, wd = xs
        k, _, kh, kw = ws
        oh, ow = h - kh + 1, wd - kw + 1
        flops = 2 * n * k * oh * ow * c * kh * kw
        nbytes = 4 * (n * c * h * wd + n * k * oh * ow)

        def make_fwd():
            x = torch.randn(xs, device=DEV)
            w = torch.randn(ws, device=DEV) * 0.1
            b = torch.randn(k, device=DEV) * 0.1
            return lambda: F.conv2d(x, w, b)

        def make_bwd(mask):
            def make():
                x = torch.randn(xs, device=DEV)
                w = torch.randn(ws, device=DEV) * 0.1
                dy = torch.randn(n, k, oh, ow, device=DEV)
                return lambda: torch.ops.aten.convolution_backward(
                    dy, x, w, [k], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask)
            return make

        def fwd(label=label, flops=flops, nbytes=nbytes):
            med, mn, reps, how = tm.best(make_fwd, nbytes)
            add("conv.fwd", label, "torch", med, mn, reps, "GFLOP/s", gflops(flops, med), f"cuDNN F.conv2d with bias, fp32; {how}")

        def bwd_data(label=label, flops=flops, nbytes=nbytes):
            med, mn, reps, how = tm.best(make_bwd([True, False, False]), nbytes)
            add("conv.bwd_data", label, "torch", med, mn, reps, "GFLOP/s", gflops(flops, med), f"aten.convolution_backward (dx), cuDNN; {how}")

        def bwd_filter(label=label, flops=flops, nbytes=nbytes):
            med, mn, reps, how = tm.best(make_bwd([False, True, True]), nbytes)
            add("conv.bwd_filter", label, "torch", med, mn, reps, "GFLOP/s", gflops(flops, med),
                f"aten.convolution_backward (dw, db), cuDNN; {how}")

        guarded("conv.fwd", label, "torch", fwd)
        guarded("conv.bwd_data", label, "torch", bwd_data)
        guarded("conv.bwd_filter", label, "torch", bwd_filter)


def case_pool(tm):
    for label, xs in POOL_SHAPES:
        n, c, h, w = xs
        oh, ow = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        nbytes = 4 * (n * c * h * w + n * c * oh * ow)

        def fwd(label=label, nbytes=nbytes, xs=xs):
            def make():
                x = torch.randn(xs, device=DEV)
                return lambda: F.avg_pool2d(x, 2, 2)
            med, mn, reps, how = tm.best(make, nbytes)
            add("pool.fwd", label, "torch", med, mn, reps, "GB/s", gbs(nbytes, med), f"F.avg_pool2d; {how}")

        def bwd(label=label, nbytes=nbytes, xs=xs, oh=oh, ow=ow):
            def make():
                x = torch.randn(xs, device=DEV)
                dy = torch.randn(xs[0], xs[1], oh, ow, device=DEV)
                return lambda: torch.ops.aten.avg_pool2d_backward(dy, x, [2, 2], [2, 2], [0, 0], False, True, None)
            med, mn, reps, how = tm.best(make, nbytes)
            add("pool.bwd", label, "torch", med, mn, reps, "GB/s", gbs(nbytes, med), f"aten.avg_pool2d_backward; {how}")

        guarded("pool.fwd", label, "torch", fwd)
        guarded("pool.bwd", label, "torch", bwd)


# ---------------------------------------------------------------- the tutorial's network
class Net:
    """conv(1->20,3x3)-BN-relu-avgpool2 ; conv(20->50,5x5)-BN-relu-avgpool2 ; flatten ;
    dense(800->128)-BN-relu ; dense(128->10). Tutorial initialization: N(0, 0.01), gamma N(1, 0.01)."""

    def __init__(self, seed=1):
        g = torch.Generator(device="cpu").manual_seed(seed)
        s = NET["weight_scale"]

        def p(*shape, mean=0.0):
            return (torch.randn(*shape, generator=g) * s + mean).to(DEV).requires_grad_()

        self.W1, self.b1, self.g1, self.be1 = p(20, 1, 3, 3), p(20), p(20, mean=1.0), p(20)
        self.W2, self.b2, self.g2, self.be2 = p(50, 20, 5, 5), p(50), p(50, mean=1.0), p(50)
        self.W3, self.b3, self.g3, self.be3 = p(128, 800), p(128), p(128, mean=1.0), p(128)  # F.linear layout
        self.W4, self.b4 = p(10, 128), p(10)
        self.params = [self.W1, self.b1, self.g1, self.be1, self.W2, self.b2, self.g2, self.be2,
                       self.W3, self.b3, self.g3, self.be3, self.W4, self.b4]
        self.rm = [torch.zeros(c, device=DEV) for c in (20, 50, 128)]
        self.rv = [torch.ones(c, device=DEV) for c in (20, 50, 128)]

    def __call__(self, x, training):
        m, eps = NET["torch_momentum"], NET["eps"]
        h = F.conv2d(x, self.W1, self.b1)
        h = F.avg_pool2d(F.relu(F.batch_norm(h, self.rm[0], self.rv[0], self.g1, self.be1, training, m, eps)), 2, 2)
        h = F.conv2d(h, self.W2, self.b2)
        h = F.avg_pool2d(F.relu(F.batch_norm(h, self.rm[1], self.rv[1], self.g2, self.be2, training, m, eps)), 2, 2)
        h = h.flatten(1)
        h = F.relu(F.batch_norm(F.linear(h, self.W3, self.b3), self.rm[2], self.rv[2], self.g3, self.be3, training, m, eps))
        return F.linear(h, self.W4, self.b4)


def make_trainer(net):
    opt = torch.optim.SGD(net.params, lr=NET["lr"])  # foreach on CUDA by default

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, True), y, reduction="sum")  # summed, as the tutorial
        loss.backward()
        opt.step()
        return loss

    return opt, step


def capture_train_graph(net, opt, step, batch):
    """The torch.cuda.graphs whole-network recipe: warm up on a side stream, capture one step."""
    sx = torch.rand(batch, 1, 28, 28, device=DEV)
    sy = torch.randint(0, 10, (batch,), device=DEV)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step(sx, sy)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        loss = F.cross_entropy(net(sx, True), sy, reduction="sum")
        loss.backward()
        opt.step()
    return g, sx, sy


def make_data():
    gen = torch.Generator(device=DEV).manual_seed(0)
    X = torch.rand(NET["epoch_images"], 1, 28, 28, device=DEV, generator=gen)
    Y = torch.randint(0, 10, (NET["epoch_images"],), device=DEV, generator=gen)
    return X, Y


def case_train_step(tm):
    B = NET["batch"]
    label = NET["train_label"]

    def eager():
        net = Net()
        _, step = make_trainer(net)
        x = torch.rand(B, 1, 28, 28, device=DEV)
        y = torch.randint(0, 10, (B,), device=DEV)
        med, mn, reps = tm.steps(lambda: step(x, y), 20)
        add("net.train_step", label, "torch", med, mn, reps, "img/s", B / (med / 1000),
            "eager: zero_grad, forward, summed F.cross_entropy, backward, optim.SGD(lr 0.001)")

    def graph():
        net = Net()
        opt, step = make_trainer(net)
        g, _, _ = capture_train_graph(net, opt, step, B)
        med, mn, reps = tm.steps(g.replay, 20)
        add("net.train_step", label, "torch-graph", med, mn, reps, "img/s", B / (med / 1000),
            "whole step (forward, backward, SGD) captured in one CUDA graph; replay only")

    guarded("net.train_step", label, "torch", eager)
    guarded("net.train_step", label, "torch-graph", graph)


def case_infer(tm):
    N = NET["infer_batch"]
    label = NET["infer_label"]

    def eager():
        net = Net()
        x = torch.rand(N, 1, 28, 28, device=DEV)

        def fn():
            with torch.inference_mode():
                return net(x, False)
        med, mn, reps = tm.steps(fn, 5)
        add("net.infer", label, "torch", med, mn, reps, "img/s", N / (med / 1000), "eager, inference_mode, moving statistics")

    def graph():
        net = Net()
        sx = torch.rand(N, 1, 28, 28, device=DEV)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s), torch.no_grad():
            for _ in range(3):
                net(sx, False)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(g):
            _out = net(sx, False)  # noqa: F841 - kept alive by the graph's pool
        med, mn, reps = tm.steps(g.replay, 5)
        add("net.infer", label, "torch-graph", med, mn, reps, "img/s", N / (med / 1000), "forward captured in a CUDA graph")

    guarded("net.infer", label, "torch", eager)
    guarded("net.infer", label, "torch-graph", graph)


def case_epoch(tm, quick):
    """One epoch (60000 images: 937 x 64 and a last batch of 32), synthetic data resident on the
    GPU. Eager also gives the memory figures: peak reserved, and growth after step 100."""
    B = NET["batch"]
    label = NET["epoch_label"]
    epochs = 1 if quick else 3

    def run_epoch(step_fn, X, Y, on_step=None):
        n = X.shape[0]
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        s.record()
        i = 0
        for k, lo in enumerate(range(0, n, B)):
            step_fn(X[lo:lo + B], Y[lo:lo + B])
            i += 1
            if on_step:
                on_step(k)
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e), (time.perf_counter() - t0) * 1000, i

    def eager():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        X, Y = make_data()
        net = Net()
        _, step = make_trainer(net)
        for k in range(10):  # warm-up (cuDNN autotuning), not timed
            step(X[k * B:(k + 1) * B], Y[k * B:(k + 1) * B])
        torch.cuda.synchronize()
        times = []
        mem = {}

        def on_step(k):
            if k == 99 and "at100" not in mem:
                torch.cuda.synchronize()
                mem["at100"] = (torch.cuda.memory_reserved(), torch.cuda.memory_allocated())

        steps = 0
        for _ in range(epochs):
            ms, wall, steps = run_epoch(step, X, Y, on_step)
            times.append(ms)
        end = (torch.cuda.memory_reserved(), torch.cuda.memory_allocated())
        peak = torch.cuda.max_memory_reserved()
        med = statistics.median(times)
        add("net.epoch", label, "torch", med, min(times), len(times), "img/s", NET["epoch_images"] / (med / 1000),
            f"eager, {steps} steps; synthetic data resident on the GPU; CUDA events (last epoch wall {wall:.0f} ms)")
        add("mem.train_peak", NET["train_label"], "torch", unit="MiB", value=peak / MiB,
            note="torch.cuda.max_memory_reserved over the eager epoch(s), data set included")
        r100, a100 = mem["at100"]
        add("mem.growth", "after step 100", "torch", unit="MiB", value=(end[0] - r100) / MiB,
            note=f"reserved {r100 / MiB:.1f} MiB at step 100 -> {end[0] / MiB:.1f} MiB at the end; allocated growth {(end[1] - a100) / MiB:.2f} MiB")

    def graph():
        X, Y = make_data()
        net = Net()
        opt, step = make_trainer(net)
        g, sx, sy = capture_train_graph(net, opt, step, B)

        def gstep(x, y):
            if x.shape[0] == B:
                sx.copy_(x)
                sy.copy_(y)
                g.replay()
            else:  # the last, short batch (32) runs eagerly: the graph's shapes are static
                step(x, y)
        for k in range(10):
            gstep(X[k * B:(k + 1) * B], Y[k * B:(k + 1) * B])
        torch.cuda.synchronize()
        times = []
        steps = 0
        for _ in range(epochs):
            ms, wall, steps = run_epoch(gstep, X, Y)
            times.append(ms)
        med = statistics.median(times)
        add("net.epoch", label, "torch-graph", med, min(times), len(times), "img/s", NET["epoch_images"] / (med / 1000),
            f"CUDA-graph replay per batch (input copied into static tensors), last batch of 32 eager; {steps} steps; data resident on the GPU")

    # eager gives the epoch and both memory figures
    if any(wanted(c, sh_, "torch") for c, sh_ in [("net.epoch", label), ("mem.train_peak", NET["train_label"]), ("mem.growth", "after step 100")]):
        guarded("net.epoch", label, "torch", eager, force=True)
    guarded("net.epoch", label, "torch-graph", graph)


# ---------------------------------------------------------------- environment
def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def env(quick):
    props = torch.cuda.get_device_properties(0)
    smi = sh(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
    name, driver = (smi.splitlines()[0].split(",") + [""])[:2] if smi else (props.name, "")
    lscpu = sh(["lscpu"])
    m = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    cpu = m.group(1).strip() if m else platform.processor() or "unknown CPU"
    l2 = getattr(props, "L2_cache_size", 0)
    notes = [
        "PyTorch at its best: per kernel the faster of (one call, L2 flushed, CUDA events) and (back-to-back calls over buffer sets > L2)",
        "cudnn.benchmark on; TF32 off for matmul and cuDNN (fp32, as kernelgrad)",
        f"{props.multi_processor_count} SMs, {props.total_memory / (1 << 30):.1f} GiB" + (f", L2 {l2 / MiB:.0f} MiB" if l2 else ""),
    ]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "framework": "pytorch",
        "device": "cuda",
        "deviceName": name.strip() or props.name,
        "driver": driver.strip() or None,
        "cpu": {"model": cpu, "cores": os.cpu_count() or 0},
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "quick": quick,
        "argv": sys.argv[1:],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()),
        },
        "notes": notes,
    }


def main():
    global ONLY, T0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures here (bench/lib/schema.ts)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, one epoch")
    ap.add_argument("--only", help="regular expression over 'case shape impl'")
    ap.add_argument("--device", default="cuda", choices=["cuda"], help="the GPU (the CPU reference is TensorFlow.js)")
    a = ap.parse_args()
    T0 = time.perf_counter()
    if not torch.cuda.is_available():
        sys.exit("torch_ref.py: no CUDA device visible to PyTorch")
    ONLY = re.compile(a.only, re.I) if a.only else None
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    tm = Timer(a.quick)
    log(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}{', --quick' if a.quick else ''}")
    for name, fn in [("copy", lambda: case_copy(tm)), ("gemm", lambda: case_gemm(tm)), ("batch norm", lambda: case_bn(tm)),
                     ("conv2d", lambda: case_conv(tm)), ("avg-pool", lambda: case_pool(tm)),
                     ("training step", lambda: case_train_step(tm)), ("inference", lambda: case_infer(tm)),
                     ("epoch and memory", lambda: case_epoch(tm, a.quick))]:
        log(name)
        fn()
    out = {"schema": SCHEMA, "env": env(a.quick), "figures": FIGURES}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        log(f"wrote {a.json}")
    log("done")


T0 = time.perf_counter()

if __name__ == "__main__":
    main()
