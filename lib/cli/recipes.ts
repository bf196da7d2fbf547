// Training recipes: named sets of `kernelgrad train` options. `--recipe fast` is the MNIST race's
// (bench/cases/race.ts runs the same recipe against PyTorch): the LeNet-sized fast-cnn trained
// with Adam on a one-cycle schedule, batch 256, for one epoch, which passes 99% test accuracy.
import { InvalidArgumentError } from 'commander';
import type { DatasetName } from './datasets';
import type { ModelName } from './models';
import type { OptimizerName, ScheduleName } from './optim';
import { UsageError } from './options';

export interface Recipe {
  model: ModelName;
  dataset: DatasetName;
  optimizer: OptimizerName;
  schedule: ScheduleName;
  /** The schedule's peak rate (Adam's updates do not depend on the loss's scale). */
  lr: number;
  batchSize: number;
  epochs: number;
}

export const RECIPES = {
  fast: { model: 'fastCnn', dataset: 'mnist', optimizer: 'adam', schedule: 'onecycle', lr: 0.01, batchSize: 256, epochs: 1 },
} as const satisfies Record<string, Recipe>;
export type RecipeName = keyof typeof RECIPES;

export function parseRecipeName(value: string): RecipeName {
  const v = value.toLowerCase();
  if (v in RECIPES) return v as RecipeName;
  throw new InvalidArgumentError(`must be one of ${Object.keys(RECIPES).join(', ')}.`);
}

/** The options a recipe fixes, with their command-line spelling. */
const FLAGS: Record<keyof Recipe, string> = {
  model: '--model', dataset: '--dataset', optimizer: '--optimizer', schedule: '--schedule', lr: '--lr', batchSize: '--batch-size', epochs: '--epochs',
};

/**
 * The options with the recipe's values filled in. Options given on the command line keep their
 * value where that still is the recipe (--epochs, --lr, --batch-size tune it); a model or dataset
 * other than the recipe's is refused, since the recipe is tuned for them.
 */
export function applyRecipe<T extends Recipe>(name: RecipeName, opts: T, given: (key: keyof Recipe) => boolean): T {
  const recipe: Recipe = RECIPES[name];
  const out = { ...opts };
  for (const key of Object.keys(FLAGS) as Array<keyof Recipe>) {
    if (!given(key)) {
      (out as Recipe)[key] = recipe[key] as never;
    } else if ((key === 'model' || key === 'dataset') && opts[key] !== recipe[key]) {
      throw new UsageError(`--recipe ${name} trains ${FLAGS.model} ${recipe.model} on ${FLAGS.dataset} ${recipe.dataset}; drop ${FLAGS[key]} ${opts[key]} or --recipe`);
    }
  }
  return out;
}
