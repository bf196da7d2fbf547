#!/usr/bin/env node
// Builds the native addon with cmake-js. Runs as the package's `install` script, so it checks the
// toolchain first: a missing cmake or C++ compiler gets one clear sentence instead of a wall of
// CMake output. Node-API headers come from the node-api-headers npm package (see "binary" in
// package.json), so nothing is downloaded here.
//
// `--emulated` (npm run build:emu) builds the addon a second time, into build-emu/, with the CUDA
// backend compiled against the CPU emulator of CUDA (native/dev/cuda/emu): no GPU and no nvcc
// needed, python3 instead (it translates the kernel launches). build/Release is left alone.
//
// `--baseline` (npm run build:baseline) builds it into build-baseline/ with the CPU kernels'
// baseline code only (no AVX2 clones) and without CUDA: the build the fallback is tested with.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

const emulated = process.argv.includes('--emulated');
const baseline = process.argv.includes('--baseline');
const missing = [];
if (emulated && !has('python3')) missing.push('python3 (the CUDA emulator translates kernel launches with it)');
if (!has('cmake')) missing.push('cmake (>= 3.18), e.g. `apt-get install cmake`');
const cxx = process.env.CXX || 'c++';
if (!has(cxx) && !has('g++') && !has('clang++')) missing.push('a C++17 compiler, e.g. `apt-get install g++`');
if (missing.length) {
  console.error('kernelgrad: cannot build the native addon; please install:\n  - ' + missing.join('\n  - '));
  process.exit(1);
}

const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const args = [cmakeJs, 'compile', '--directory', path.resolve(__dirname, '..')];
if (emulated) args.push('--out', path.resolve(__dirname, '..', 'build-emu'), '--CDKG_EMULATED_CUDA=ON');
else if (baseline) args.push('--out', path.resolve(__dirname, '..', 'build-baseline'), '--CDKG_BASELINE_ONLY=ON');
else if (process.env.KG_DEBUG_BUILD) args.push('--debug');
const env = baseline ? { ...process.env, KG_NO_CUDA: '1' } : process.env;
const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
if (r.status !== 0) {
  console.error('kernelgrad: the native build failed (see the CMake output above).');
  process.exit(r.status || 1);
}
