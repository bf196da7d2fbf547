// The running statistics of batch norm, updated by the CUDA forward kernels themselves (the
// writer thread of each channel, from the count the statistics pass kept): the suite of
// test/helpers/batchnorm-running.ts, also run on the CPU.
import { runningUpdateSuite } from '../helpers/batchnorm-running';
import { describeGpu } from './helpers';

describeGpu('batch norm on CUDA', () => runningUpdateSuite('cuda'));
