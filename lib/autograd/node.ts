// A recorded op: its inputs and the rule that turns the gradient of its output into gradients of
// its inputs. Rules live next to their ops in lib/ops/.
import type { Tensor } from '../tensor';

export interface GradNode {
  /** The op's name, for error messages and debugging. */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /**
   * Gradients of the inputs (one entry per input, null where none flows) from the gradient of the
   * output. Called at most once per backward pass; the returned tensors belong to the caller.
   */
  backward(gradOutput: Tensor): Array<Tensor | null>;
}
