#!/usr/bin/env python3
"""Smoke test of torch_ref.py without a GPU: runs it on the CPU with the CUDA calls shimmed
(events = wall clock, graph replay = re-running the captured step, shrunken large shapes and
epoch). It checks the script's logic (aten signatures, autograd, graph flow, JSON), not its
numbers. Needs a CPU PyTorch (e.g. Debian's python3-torch with /usr/bin/python3):

    /usr/bin/python3 bench/reference/torch_ref_cpu_smoke.py [--quick] [--json /tmp/t.json]
"""
import os
import sys, time, types, importlib.util, contextlib
import torch

class Event:
    def __init__(self, enable_timing=False): self.t = None
    def record(self, stream=None): self.t = time.perf_counter()
    def elapsed_time(self, other): return (other.t - self.t) * 1000

class Stream:
    def wait_stream(self, s): pass

class CUDAGraph:
    def __init__(self): self.fn = lambda: None
    def replay(self): self.fn()

@contextlib.contextmanager
def graph(g, *a, **k):
    # the captured region runs once, eagerly; replay re-runs the training step (set below)
    yield
cuda = torch.cuda
cuda.is_available = lambda: True
cuda.Event = Event
cuda.synchronize = lambda *a: None
cuda.empty_cache = lambda: None
cuda.reset_peak_memory_stats = lambda *a: None
cuda.memory_reserved = lambda *a: 123 << 20
cuda.memory_allocated = lambda *a: 100 << 20
cuda.max_memory_reserved = lambda *a: 150 << 20
cuda.Stream = Stream
cuda.stream = lambda s: contextlib.nullcontext()
cuda.current_stream = lambda: Stream()
cuda.CUDAGraph = CUDAGraph
cuda.graph = graph
cuda.get_device_name = lambda *a: 'CPU shim'
cuda.get_device_properties = lambda *a: types.SimpleNamespace(name='CPU shim', multi_processor_count=2, total_memory=24 << 30, L2_cache_size=50 << 20)
cuda._sleep = lambda n: None
if not hasattr(torch, 'set_float32_matmul_precision'):
    torch.set_float32_matmul_precision = lambda p: None

_orig_gen = torch.Generator
def Gen(device=None):
    return _orig_gen(device='cpu')
torch.Generator = Gen

spec = importlib.util.spec_from_file_location('torch_ref', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torch_ref.py'))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
m.DEV = torch.device('cpu')
m.ROTATE_BYTES = 16 << 20
m.COPY_ELEMS = 1 << 22
m.BN_SHAPES = [s for s in m.BN_SHAPES if s[0] not in ('256x64x112x112', '32x256x56x56')] + [('32x256x56x56', (2, 256, 56, 56))]
m.GEMM_SHAPES = [('64x800x128', 64, 800, 128), ('4096^3', 256, 256, 256)]
m.NET['epoch_images'] = 64 * 120 + 32
# graph replay = re-run the last eager step on the static tensors
orig_capture = m.capture_train_graph
def capture(net, opt, step, batch):
    g, sx, sy = orig_capture(net, opt, step, batch)
    g.fn = lambda: step(sx, sy)
    return g, sx, sy
m.capture_train_graph = capture
m.main()
