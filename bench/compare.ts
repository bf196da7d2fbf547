// Merges bench JSON files (ours and PyTorch's from bench/reference/torch_ref.py, or several runs)
// into one table with ratios and the acceptance verdicts.
//   npx ts-node --transpile-only bench/compare.ts ours.json torch.json [--md OUT.md] [--results bench/RESULTS.md]
// --results rewrites that device's section of the RESULTS file (the other device's stays).
import * as fs from 'fs';
import type { BenchFile } from './lib/schema';
import { SCHEMA } from './lib/schema';
import { deviceHeading, merge, renderAll, updateResultsFile } from './lib/report';

function main(): void {
  const args = process.argv.slice(2);
  let md: string | undefined;
  let results: string | undefined;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--md') md = args[++i];
    else if (args[i] === '--results') results = args[++i];
    else files.push(args[i]);
  }
  if (files.length === 0) {
    console.error('usage: ts-node bench/compare.ts A.json [B.json ...] [--md OUT.md] [--results RESULTS.md]');
    process.exit(1);
  }
  const parsed: BenchFile[] = files.map((f) => {
    const j = JSON.parse(fs.readFileSync(f, 'utf8')) as BenchFile;
    if (j.schema !== SCHEMA) throw new Error(`${f}: schema ${j.schema}, expected ${SCHEMA}`);
    return j;
  });
  const merged = merge(parsed);
  const text = renderAll(merged);
  if (md) fs.writeFileSync(md, text);
  if (results) updateResultsFile(results, merged, deviceHeading(merged));
  process.stdout.write(text);
}

main();
