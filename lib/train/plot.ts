// A picture of a training run: loss and accuracy over the epochs, drawn with vega-lite, rendered to
// SVG by vega (no canvas needed) and rasterized to PNG by resvg.
import * as path from 'path';
import { pathToFileURL } from 'url';
import { writeFileAtomic } from '../io/atomic';
import { describe, readOptions } from '../options';
import type { EpochMetrics } from './metrics';

/** The vega-lite spec (a plain JSON object) of the loss and accuracy charts for these epochs. */
export function trainingPlotSpec(epochs: EpochMetrics[], title = 'Training'): Record<string, unknown> {
  if (!Array.isArray(epochs)) throw new TypeError(`kg.train.trainingPlotSpec: epochs must be an array of EpochMetrics, got ${describe(epochs)}`);
  const loss = epochs.map((e) => ({ epoch: e.epoch, value: e.loss, series: 'loss' }));
  const acc = epochs.flatMap((e) => [
    { epoch: e.epoch, value: e.trainAccuracy, series: 'train' },
    { epoch: e.epoch, value: e.testAccuracy, series: 'test' },
  ]);
  const x = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    axis: { tickMinStep: 1, format: 'd' },
    scale: { domain: [0, Math.max(1, epochs.length - 1)] },
  };
  const mark = { type: 'line', point: true };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    background: 'white',
    config: { font: 'DejaVu Sans, Arial, Helvetica, sans-serif', view: { stroke: null } },
    resolve: { scale: { color: 'independent', y: 'independent' } },
    hconcat: [
      {
        title: 'Loss',
        width: 320,
        height: 240,
        data: { values: loss },
        mark,
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: 'loss (moving average)', scale: { zero: true } },
          color: { value: '#d62728' },
        },
      },
      {
        title: 'Accuracy',
        width: 320,
        height: 240,
        data: { values: acc },
        mark,
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: 'accuracy', scale: { zero: false } },
          color: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: { domain: ['train', 'test'] },
            legend: { orient: 'top' },
          },
        },
      },
    ],
  };
}

// vega and vega-lite are ES modules (vega with top-level await), so they cannot be require()d.
// TypeScript compiles `import()` to `require()` under CommonJS; a Function keeps the real import().
const dynamicImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<any>;

async function importEsm(name: string): Promise<any> {
  return dynamicImport(pathToFileURL(require.resolve(name)).href);
}

/** Renders a vega-lite spec to an SVG string. */
export async function renderSvg(vlSpec: Record<string, unknown>): Promise<string> {
  const [vega, vl] = await Promise.all([importEsm('vega'), importEsm('vega-lite')]);
  const compiled = vl.compile(vlSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterizes an SVG string to PNG bytes (`scale` 2 gives a sharp image on high-density screens). */
export function svgToPng(svg: string, scale = 2): Buffer {
  if (typeof svg !== 'string') throw new TypeError(`kg.train.svgToPng: svg must be a string, got ${describe(svg)}`);
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`kg.train.svgToPng: scale must be a positive number, got ${describe(scale)}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Resvg } = require('@resvg/resvg-js') as typeof import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return Buffer.from(r.render().asPng());
}

/**
 * Writes `<base>.png` (and `<base>.svg` when `svg` is true) for these epochs, atomically.
 * Returns the paths written.
 */
export async function writeTrainingPlot(
  epochs: EpochMetrics[],
  base: string,
  options?: { title?: string; svg?: boolean },
): Promise<string[]> {
  const fn = 'kg.train.writeTrainingPlot';
  const opts = readOptions(options, fn, ['title', 'svg']);
  if (!Array.isArray(epochs)) throw new TypeError(`${fn}: epochs must be an array of EpochMetrics, got ${describe(epochs)}`);
  if (typeof base !== 'string') throw new TypeError(`${fn}: base must be a path string, got ${describe(base)}`);
  if (opts.title !== undefined && typeof opts.title !== 'string') throw new TypeError(`${fn}: title must be a string, got ${describe(opts.title)}`);
  const svg = await renderSvg(trainingPlotSpec(epochs, opts.title));
  const written: string[] = [];
  const png = `${base}.png`;
  writeFileAtomic(png, svgToPng(svg));
  written.push(png);
  if (opts.svg) {
    const file = `${base}.svg`;
    writeFileAtomic(file, svg);
    written.push(file);
  }
  return written.map((p) => path.resolve(p));
}
