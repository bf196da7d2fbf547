// Deep copies of modules, for transformations that build a new model out of an existing one
// (foldBatchNorm) and must leave the original exactly as it was: its tensors, and its training
// flags, which a shared sub-module would see flipped by the new model's eval().
import { Tensor } from '../tensor';
import { Module } from './module';

// A module's registries. Module keeps them private to its subclasses' API; copying a module of
// any class (with its configuration fields) needs them directly.
interface Registries {
  _params: Map<string, Tensor>;
  _buffers: Map<string, Tensor>;
  _modules: Map<string, Module>;
}

function registries(m: Module): Registries {
  return m as unknown as Registries;
}

function copyTensor(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.device);
  out.storage.copyFrom(t.storage);
  return out;
}

/** A copy of `m` and its sub-modules with their own parameters and buffers (gradients are not copied). */
export function cloneModule<M extends Module>(m: M): M {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(m)) as M, m);
  const from = registries(m);
  const to = registries(copy);
  to._params = new Map([...from._params].map(([name, t]) => [name, copyTensor(t).attachGrad()]));
  to._buffers = new Map([...from._buffers].map(([name, t]) => [name, copyTensor(t).keep()]));
  to._modules = new Map([...from._modules].map(([name, sub]) => [name, cloneModule(sub)]));
  return copy;
}

/** Sets (or adds) parameter `name` of a module made by cloneModule, e.g. the bias of a folded layer. */
export function setParameter(m: Module, name: string, t: Tensor): void {
  const params = registries(m)._params;
  params.get(name)?.dispose();
  params.set(name, t.attachGrad());
}
