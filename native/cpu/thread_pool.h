// The CPU kernels' worker threads.
//
// A parallel loop hands out its items in chunks that the calling thread and the workers claim
// from a shared counter, and it returns once every claimed chunk is done. The caller never waits
// for a worker that has not started: when a worker is asleep, or descheduled because another
// process has the core, the caller claims that worker's chunks itself. That is what lets the
// workers stay awake between loops (they spin for a while, then sleep): back-to-back kernels find
// them ready, and on a busy machine a worker that lost its core costs nothing but its own help.
// (A fork-join team -- OpenMP's -- waits at its closing barrier for every thread of the team,
// and so for the slowest one to be scheduled: with long spinning, beside a process that kept one
// of two cores busy, the tutorial's training step went from 4 ms to 35.)
//
// One loop runs on the pool at a time: a loop started while another is running (from a second
// Node worker thread), or inside a loop's body, runs on its calling thread alone.
#pragma once
#include <cstdint>

namespace kg::cpu {

// Threads a loop started now would get, the caller included: 1 inside a loop's body.
int pool_threads();

// Sets the number of threads loops use, the caller included (>= 1). Workers are started when
// first needed; a thread that cannot be started leaves the pool smaller.
void set_pool_threads(int threads);

// Calls body(ctx, begin, end) on chunks [begin, end) covering [0, count), `chunk` items each (the
// last shorter), on the caller and the pool's workers. Returns when every chunk is done. An
// exception thrown by a chunk is rethrown here (the first one; later chunks still run).
using ChunkBody = void (*)(void* ctx, int64_t begin, int64_t end);
void pool_run(int64_t count, int64_t chunk, ChunkBody body, void* ctx);

// Whether the calling thread is inside a loop's body (a nested loop then runs serially).
bool pool_in_loop();

}  // namespace kg::cpu
