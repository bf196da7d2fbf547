#!/usr/bin/env python3
"""Rewrites CUDA sources for the CPU emulation: `kernel<T><<<grid, block, smem, stream>>>(args);`
becomes `::emu::launch(dim3(grid), dim3(block), &kernel<T>, args);`, everything else is kept.

usage: translate.py IN.cu OUT.cpp
"""
import re
import sys


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
        call = "::emu::launch(dim3(%s), dim3(%s), &%s%s)" % (config[0], config[1], kernel, ", " + args if args else "")
        out = out[:m.start()] + call + out[args_close + 1:]


if __name__ == "__main__":
    src = open(sys.argv[1]).read()
    open(sys.argv[2], "w").write(translate(src))
