#!/usr/bin/env python3
"""Rewrites CUDA sources for the CPU emulation (see README.md):
- `kernel<T><<<grid, block, smem, stream>>>(args);` becomes `::emu::launch(stream, dim3(grid),
  dim3(block), &kernel<T>, args);`
- `__shared__ T name[N];` becomes `auto& name = ::emu::shared<T[N], id>();`, a place in the block's
  shared-memory arena (NaN-filled at each block's start, watched by the race checker);
- `reinterpret_cast<const float4*>(p)` becomes `::emu::vector_ptr(reinterpret_cast<...>(p))`, which
  checks the alignment a GPU requires;
- every `__global__` function starts by naming itself to the emulator, for its reports.
Everything else is kept.

usage: translate.py IN.cu OUT.cpp
"""
import os
import re
import sys
import zlib


def matching_back(text, end, open_ch, close_ch):
    """Index of the `open_ch` matching the `close_ch` at text[end]."""
    depth = 0
    for i in range(end, -1, -1):
        if text[i] == close_ch:
            depth += 1
        elif text[i] == open_ch:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced " + open_ch + close_ch)


def matching_forward(text, start, open_ch, close_ch):
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced " + open_ch + close_ch)


def split_top_level(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def translate(text):
    out = text
    while True:
        pos = out.find("<<<")
        if pos < 0:
            return out
        # The kernel: an identifier, maybe with template arguments, right before <<<.
        k_end = pos - 1
        k_start = pos
        if out[k_end] == ">":
            k_start = matching_back(out, k_end, "<", ">")
        m = re.search(r"[A-Za-z_][A-Za-z_0-9:]*$", out[:k_start])
        kernel = out[m.start():pos]
        cfg_end = out.index(">>>", pos)
        config = split_top_level(out[pos + 3:cfg_end])
        args_open = out.index("(", cfg_end)
        args_close = matching_forward(out, args_open, "(", ")")
        args = out[args_open + 1:args_close].strip()
        # The stream decides whether the launch runs now or is recorded into a capture; no
        # stream is the legacy default stream, as in CUDA.
        stream = config[3] if len(config) > 3 else "cudaStream_t{}"
        call = "::emu::launch(%s, dim3(%s), dim3(%s), &%s%s)" % (stream, config[0], config[1], kernel,
                                                               ", " + args if args else "")
        out = out[:m.start()] + call + out[args_close + 1:]


SHARED_DECL = re.compile(
    r"__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:]*(?:\s*<[^;]*?>)?)\s+([A-Za-z_]\w*)\s*((?:\[[^\]]+\]\s*)*);")


def rewrite_shared(text, path):
    # Ids unique across files: identical (type, id) pairs from two files would share one placement.
    count = [zlib.crc32(path.encode()) % 100000 * 1000]

    def repl(m):
        count[0] += 1
        type_, name, dims = m.group(1), m.group(2), re.sub(r"\s+", "", m.group(3))
        return "auto& %s = ::emu::shared<%s%s, %d>();" % (name, type_, dims, count[0])

    out = SHARED_DECL.sub(repl, text)
    left = re.search(r"__shared__[^\n]*", re.sub(r"//[^\n]*", "", out))
    if left:
        raise ValueError("translate.py cannot rewrite this __shared__ declaration: " + left.group(0))
    return out


VECTOR_CAST = re.compile(r"reinterpret_cast<\s*(const\s+)?float[24]\s*\*\s*>\s*\(")


def rewrite_vector_casts(text):
    out, pos = "", 0
    for m in VECTOR_CAST.finditer(text):
        close = matching_forward(text, m.end() - 1, "(", ")")
        out += text[pos:m.start()] + "::emu::vector_ptr(" + text[m.start():close + 1] + ")"
        pos = close + 1
    return out + text[pos:]


def mark_kernels(text):
    """Inserts `::emu::enter_kernel("name");` at the top of every __global__ function's body."""
    out, pos = "", 0
    for m in re.finditer(r"__global__\b", text):
        if m.start() < pos:
            continue
        i = m.end()
        name = None
        while True:
            ident = re.compile(r"[A-Za-z_]\w*").search(text, i)
            j = ident.end()
            while text[j].isspace():
                j += 1
            if text[j] == "(":
                close = matching_forward(text, j, "(", ")")
                if ident.group(0) != "__launch_bounds__":
                    name = ident.group(0)
                    break
                i = close + 1
            else:
                i = j
        brace = text.index("{", close)
        if ";" in text[close:brace]:  # a declaration, not a definition
            continue
        out += text[pos:brace + 1] + ' ::emu::enter_kernel("%s");' % name
        pos = brace + 1
    return out + text[pos:]


if __name__ == "__main__":
    src = open(sys.argv[1]).read()
    src = mark_kernels(rewrite_vector_casts(rewrite_shared(src, os.path.basename(sys.argv[1]))))
    # Reports and debuggers name the original file and line (the rewrites keep lines in place).
    open(sys.argv[2], "w").write('#line 1 "%s"\n' % os.path.abspath(sys.argv[1]) + translate(src))
