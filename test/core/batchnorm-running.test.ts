// The running statistics of batch norm, updated by the CPU forward kernel itself: see
// test/helpers/batchnorm-running.ts (the same suite runs on CUDA in test/gpu).
import { runningUpdateSuite } from '../helpers/batchnorm-running';

runningUpdateSuite('cpu');
