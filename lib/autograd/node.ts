// A recorded op: its inputs, the rule that turns the gradient of its output into gradients of its
// inputs, and the tensors that rule reads. Rules live next to their ops in lib/ops/.
import { formatShape } from '../shape';
import type { Tensor } from '../tensor';

/**
 * Gradients of the inputs (one entry per input, null where none flows) from the gradient of the
 * output. Called at most once per backward pass; the returned tensors belong to the caller.
 */
export type GradRule = (gradOutput: Tensor) => Array<Tensor | null>;

export class GradNode {
  private inputList: readonly Tensor[];
  private rule: GradRule | null;
  private saved: readonly Tensor[];
  private readonly savedVersions: readonly number[];

  /**
   * `saved` lists the tensors whose values the rule reads (not just their shapes): their versions
   * are taken now, so that an in-place write between forward and backward, which would make the
   * gradient silently wrong, is caught instead. `anomaly` marks nodes recorded under anomaly
   * detection, whose gradients are checked even when backward runs outside it.
   */
  constructor(
    /** The op's name, for error messages and debugging. */
    readonly op: string,
    inputs: readonly Tensor[],
    rule: GradRule,
    saved: readonly Tensor[],
    readonly anomaly: boolean,
  ) {
    this.inputList = inputs;
    this.rule = rule;
    this.saved = saved;
    this.savedVersions = saved.map((t) => t.version);
  }

  get inputs(): readonly Tensor[] {
    return this.inputList;
  }

  /** True once a backward pass without retainGraph has run through this node. */
  get freed(): boolean {
    return this.rule === null;
  }

  /** Drops the inputs, the rule and what it saved, so their memory can be reclaimed. */
  free(): void {
    this.rule = null;
    this.inputList = [];
    this.saved = [];
  }

  /** Throws when the graph was freed here, or a saved tensor was disposed or written in place. */
  check(): void {
    if (this.rule === null) {
      throw new Error(
        `backward: the graph through ${this.op} was freed by an earlier backward(); pass { retainGraph: true } ` +
          'to the first backward() to run backward through it again',
      );
    }
    this.saved.forEach((t, i) => {
      if (t.disposed) {
        throw new Error(`backward: one of the tensors needed by ${this.op} for its gradient, ${formatShape(t.shape)}, was disposed before backward()`);
      }
      if (t.version !== this.savedVersions[i]) {
        throw new Error(
          `backward: one of the tensors needed by ${this.op} for its gradient, ${formatShape(t.shape)}, was modified in place ` +
            `after it was used (version ${t.version}, expected ${this.savedVersions[i]}); ` +
            'compute into a new tensor, or write after backward()',
        );
      }
    });
  }

  backward(gradOutput: Tensor): Array<Tensor | null> {
    this.check();
    return (this.rule as GradRule)(gradOutput);
  }
}
