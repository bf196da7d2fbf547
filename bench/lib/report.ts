// The table: one row per case and shape, one column per implementation (median time and its
// throughput), kernelgrad's figure as a fraction of our ceilings, and ratios "x REF" = REF's median
// time / ours (above 1: ours is faster). Then the acceptance verdicts ("meets" / "short").
// Used by bench/run.ts (one run) and bench/compare.ts (several JSON files, e.g. ours + PyTorch).
import type { BenchFile, Figure } from './schema';
import { figureKey } from './schema';
import { RACE } from './shapes';

export const OURS = 'kernelgrad';
const IMPL_ORDER = [OURS, 'torch', 'onnxruntime', 'torch-cl', 'torch-graph', 'tfjs-wasm', 'tfjs-cpu', 'tfjs-node'];
const CASE_ORDER = [
  'ceiling.copy', 'gemm', 'bn.train_fwd', 'bn.infer_fwd', 'bn.backward', 'bn_relu.train_fwd', 'bn_relu.backward', 'conv.fwd', 'conv.bwd_data', 'conv.bwd_filter',
  'pool.fwd', 'pool.bwd', 'net.train_step', 'net.infer', 'net.infer_folded', 'net.epoch', 'race.mnist99', 'mem.train_peak', 'mem.growth',
];

function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 10) return v.toFixed(2);
  if (a >= 1) return v.toFixed(3);
  if (a >= 0.01) return v.toFixed(4);
  return v.toPrecision(3);
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${fmtNum(ms)} ms`;
}

function cell(f: Figure | undefined): string {
  if (!f) return '';
  switch (f.status) {
    case 'ok': {
      const parts: string[] = [];
      if (f.median_ms !== undefined) parts.push(fmtMs(f.median_ms));
      if (f.metric) parts.push(`${fmtNum(f.metric.value)} ${f.metric.unit}`);
      return parts.join(' · ');
    }
    case 'wrong':
      return `**WRONG** (err ${f.check?.maxErr.toExponential(1)})`;
    case 'failed':
      return 'failed';
    case 'unavailable':
      return 'unavailable';
    default:
      return 'skipped';
  }
}

/** ref / ours, oriented so that above 1 means ours is better. */
export function ratio(ours: Figure | undefined, ref: Figure | undefined): number | undefined {
  if (!ours || !ref || ours.status !== 'ok' || ref.status !== 'ok') return undefined;
  if (ours.median_ms !== undefined && ref.median_ms !== undefined) return ref.median_ms / ours.median_ms;
  if (ours.case === 'mem.train_peak' && ours.metric && ref.metric) return ref.metric.value / ours.metric.value;
  return undefined;
}

function fmtRatio(r: number | undefined): string {
  if (r === undefined) return '';
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`;
}

export interface Merged {
  files: BenchFile[];
  figures: Figure[];
  device: 'cpu' | 'cuda';
}

export function merge(files: BenchFile[]): Merged {
  const figures = files.flatMap((f) => f.figures);
  const oursDev = figures.find((f) => f.impl === OURS)?.device;
  const device = oursDev ?? files[0]?.env.device ?? 'cpu';
  return { files, figures, device };
}

interface Row {
  caseKey: string;
  shape: string;
  byImpl: Map<string, Figure>;
}

function rows(m: Merged): { rows: Row[]; impls: string[] } {
  const map = new Map<string, Row>();
  const order: string[] = [];
  for (const f of m.figures) {
    const k = figureKey(f);
    let r = map.get(k);
    if (!r) {
      r = { caseKey: f.case, shape: f.shape, byImpl: new Map() };
      map.set(k, r);
      order.push(k);
    }
    // the first file wins for duplicates
    if (!r.byImpl.has(f.impl)) r.byImpl.set(f.impl, f);
  }
  const rs = order.map((k) => map.get(k)!);
  rs.sort((a, b) => {
    const ia = CASE_ORDER.indexOf(a.caseKey);
    const ib = CASE_ORDER.indexOf(b.caseKey);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || order.indexOf(figureKey({ case: a.caseKey, shape: a.shape })) - order.indexOf(figureKey({ case: b.caseKey, shape: b.shape }));
  });
  const seen = new Set(m.figures.map((f) => f.impl));
  const impls = [...IMPL_ORDER.filter((i) => seen.has(i)), ...[...seen].filter((i) => !IMPL_ORDER.includes(i)).sort()];
  return { rows: rs, impls };
}

function ceilings(m: Merged): { copy?: number; gemm?: number } {
  const mine = m.figures.filter((f) => f.impl === OURS && f.status === 'ok' && f.metric);
  const copy = mine.find((f) => f.case === 'ceiling.copy')?.metric?.value;
  const gemms = mine.filter((f) => f.case === 'gemm');
  const gemm = gemms.length ? Math.max(...gemms.map((f) => f.metric!.value)) : undefined;
  return { copy, gemm };
}

function pctOfCeiling(f: Figure | undefined, c: { copy?: number; gemm?: number }): string {
  if (!f || f.status !== 'ok' || !f.metric) return '';
  if (f.case === 'ceiling.copy') return 'ceiling';
  if (f.metric.unit === 'GB/s' && c.copy) return `${((100 * f.metric.value) / c.copy).toFixed(0)}%`;
  if (f.metric.unit === 'GFLOP/s' && c.gemm) return `${((100 * f.metric.value) / c.gemm).toFixed(0)}%`;
  return '';
}

function checkCell(f: Figure | undefined): string {
  if (!f?.check) return '';
  return f.check.status === 'pass' ? `ok ${f.check.maxErr.toExponential(0)}` : `**FAIL** ${f.check.maxErr.toExponential(1)}`;
}

export function renderTable(m: Merged): string {
  const { rows: rs, impls } = rows(m);
  const refs = impls.filter((i) => i !== OURS);
  const ratioRefs = refs.filter((r) => rs.some((row) => ratio(row.byImpl.get(OURS), row.byImpl.get(r)) !== undefined));
  const c = ceilings(m);
  const head = ['case', 'shape', ...impls.flatMap((i) => (i === OURS ? [OURS, 'check', '% of ceiling'] : [i])), ...ratioRefs.map((r) => `x ${r}`)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const row of rs) {
    const ours = row.byImpl.get(OURS);
    const cells = [row.caseKey, row.shape];
    for (const i of impls) {
      const f = row.byImpl.get(i);
      if (i === OURS) cells.push(cell(f), checkCell(f), pctOfCeiling(f, c));
      else cells.push(cell(f));
    }
    for (const r of ratioRefs) cells.push(fmtRatio(ratio(ours, row.byImpl.get(r))));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

interface Criterion {
  label: string;
  caseKey: string;
  shape?: string;
  ref: string;
  /** Ratio target (time ratio ref/ours) or, for 'fraction', ours' throughput / ref's. */
  target: number;
  /** 'speedup' of one row; 'sum': of the summed times of `caseKey` and `alsoCases` at `shape`;
   *  'everyRow': the lowest speedup over every row both sides measured (named in the verdict);
   *  'seconds': ours' time alone, at most `target` seconds (`ref` unused). */
  kind: 'speedup' | 'fraction' | 'sum' | 'everyRow' | 'seconds';
  alsoCases?: string[];
  /** Informational: printed with its ratio, no verdict. */
  info?: boolean;
}

function criteria(m: Merged): Criterion[] {
  const cs: Criterion[] = [];
  if (m.device === 'cuda') {
    const bnShapes = [...new Set(m.figures.filter((f) => f.case.startsWith('bn.') && f.impl === OURS).map((f) => `${f.case}|${f.shape}`))];
    for (const k of bnShapes) {
      const [caseKey, shape] = k.split('|');
      cs.push({ label: `${caseKey} ${shape} vs cuDNN (NCHW)`, caseKey, shape, ref: 'torch', target: 1, kind: 'speedup' });
    }
    cs.push({ label: 'training epoch vs PyTorch eager', caseKey: 'net.epoch', ref: 'torch', target: 1, kind: 'speedup' });
    cs.push({ label: 'GEMM 4096^3 fp32 vs cuBLAS (>= 50%)', caseKey: 'gemm', shape: '4096^3', ref: 'torch', target: 0.5, kind: 'fraction' });
    for (const k of bnShapes) {
      const [caseKey, shape] = k.split('|');
      if (!m.figures.some((f) => f.impl === 'torch-cl' && f.case === caseKey && f.shape === shape)) continue; // 2-D input has no channels-last form
      cs.push({ label: `${caseKey} ${shape} vs PyTorch channels-last`, caseKey, shape, ref: 'torch-cl', target: 1, kind: 'speedup', info: true });
    }
    cs.push({ label: 'training epoch vs PyTorch CUDA graph', caseKey: 'net.epoch', ref: 'torch-graph', target: 1, kind: 'speedup', info: true });
    cs.push({ label: 'training step vs PyTorch eager', caseKey: 'net.train_step', ref: 'torch', target: 1, kind: 'speedup', info: true });
    cs.push({ label: 'training step vs PyTorch CUDA graph', caseKey: 'net.train_step', ref: 'torch-graph', target: 1, kind: 'speedup', info: true });
    cs.push({ label: 'inference b1000 vs PyTorch eager', caseKey: 'net.infer', ref: 'torch', target: 1, kind: 'speedup', info: true });
    cs.push({ label: 'peak GPU memory (training) vs PyTorch eager', caseKey: 'mem.train_peak', ref: 'torch', target: 1, kind: 'speedup', info: true });
  } else {
    cs.push({ label: 'training step b64 vs PyTorch + OpenBLAS (>= 2.5x)', caseKey: 'net.train_step', ref: 'torch', target: 2.5, kind: 'speedup' });
    cs.push({ label: 'inference b1000 vs PyTorch (>= 2.5x)', caseKey: 'net.infer', shape: 'b1000', ref: 'torch', target: 2.5, kind: 'speedup' });
    cs.push({ label: 'inference b1000 vs onnxruntime-node (>= 1.25x)', caseKey: 'net.infer', shape: 'b1000', ref: 'onnxruntime', target: 1.25, kind: 'speedup' });
    cs.push({ label: 'inference b1 latency vs onnxruntime-node (no slower)', caseKey: 'net.infer', shape: 'b1', ref: 'onnxruntime', target: 1, kind: 'speedup' });
    cs.push({
      label: 'batch norm forward + backward 32x256x56x56 vs PyTorch (>= 1.5x)', caseKey: 'bn.train_fwd', alsoCases: ['bn.backward'],
      shape: '32x256x56x56', ref: 'torch', target: 1.5, kind: 'sum',
    });
    cs.push({ label: 'SGEMM 2048^3 vs PyTorch (OpenBLAS) (>= 0.9x)', caseKey: 'gemm', shape: '2048^3', ref: 'torch', target: 0.9, kind: 'speedup' });
    cs.push({ label: 'no case slower than PyTorch', caseKey: '*', ref: 'torch', target: 1, kind: 'everyRow' });
    cs.push({ label: `MNIST to 99% vs PyTorch (>= ${RACE.speedup}x)`, caseKey: 'race.mnist99', ref: 'torch', target: RACE.speedup, kind: 'speedup' });
    cs.push({ label: `MNIST to 99% (<= ${RACE.maxSeconds} s)`, caseKey: 'race.mnist99', ref: OURS, target: RACE.maxSeconds, kind: 'seconds' });
    cs.push({ label: 'training step b64 vs tfjs-wasm (>= 5x)', caseKey: 'net.train_step', ref: 'tfjs-wasm', target: 5, kind: 'speedup' });
    cs.push({ label: 'inference b1000 images/s vs tfjs-wasm (>= 5x)', caseKey: 'net.infer', shape: 'b1000', ref: 'tfjs-wasm', target: 5, kind: 'speedup' });
    cs.push({ label: 'training step b64 vs tfjs-cpu', caseKey: 'net.train_step', ref: 'tfjs-cpu', target: 1, kind: 'speedup', info: true });
    cs.push({ label: 'inference b1000 vs tfjs-cpu', caseKey: 'net.infer', shape: 'b1000', ref: 'tfjs-cpu', target: 1, kind: 'speedup', info: true });
  }
  return cs;
}

export interface Verdict {
  label: string;
  ours?: string;
  ref?: string;
  ratio?: number;
  target: string;
  verdict: 'meets' | 'short' | 'n/a' | 'info';
  why?: string;
}

export function verdicts(m: Merged): Verdict[] {
  const out: Verdict[] = [];
  for (const c of criteria(m)) {
    if (c.kind === 'sum' || c.kind === 'everyRow' || c.kind === 'seconds') {
      out.push(c.kind === 'sum' ? sumVerdict(m, c) : c.kind === 'everyRow' ? everyRowVerdict(m, c) : secondsVerdict(m, c));
      continue;
    }
    const pick = (impl: string) =>
      m.figures.find((f) => f.impl === impl && f.case === c.caseKey && (c.shape === undefined || f.shape === c.shape));
    const o = pick(OURS);
    const r = pick(c.ref);
    const target = c.kind === 'fraction' ? `>= ${(c.target * 100).toFixed(0)}% of ${c.ref}` : `>= ${c.target}x`;
    const v: Verdict = { label: c.label, ours: o ? cell(o) : undefined, ref: r ? cell(r) : undefined, target, verdict: 'n/a' };
    if (!o || o.status !== 'ok' || !r || r.status !== 'ok') {
      if (o?.status === 'wrong') {
        v.verdict = c.info ? 'info' : 'short';
        v.why = 'ours gives a wrong result';
      } else {
        v.verdict = c.info ? 'info' : 'n/a';
        v.why = !o ? 'ours not measured' : o.status !== 'ok' ? `ours ${o.status}` : !r ? `${c.ref} not measured` : `${c.ref} ${r.status}`;
      }
      out.push(v);
      continue;
    }
    v.ratio = c.kind === 'fraction' ? o.metric!.value / r.metric!.value : ratio(o, r);
    v.verdict = c.info ? 'info' : v.ratio !== undefined && v.ratio >= c.target ? 'meets' : 'short';
    out.push(v);
  }
  return out;
}

function targetText(c: Criterion): string {
  return `>= ${c.target}x`;
}

/** Ours and the reference summed over the criterion's cases (e.g. BN forward + backward). */
function sumVerdict(m: Merged, c: Criterion): Verdict {
  const cases = [c.caseKey, ...(c.alsoCases ?? [])];
  const total = (impl: string): number | string => {
    let ms = 0;
    for (const k of cases) {
      const f = m.figures.find((x) => x.impl === impl && x.case === k && x.shape === c.shape);
      if (!f) return `${impl} ${k} not measured`;
      if (f.status === 'wrong' && impl === OURS) return 'ours gives a wrong result';
      if (f.status !== 'ok' || f.median_ms === undefined) return `${impl} ${k} ${f.status}`;
      ms += f.median_ms;
    }
    return ms;
  };
  const o = total(OURS);
  const r = total(c.ref);
  const v: Verdict = { label: c.label, target: targetText(c), verdict: 'n/a' };
  if (typeof o === 'string' || typeof r === 'string') {
    v.why = typeof o === 'string' ? o : (r as string);
    if (v.why === 'ours gives a wrong result') v.verdict = 'short';
    return v;
  }
  Object.assign(v, { ours: fmtMs(o), ref: fmtMs(r), ratio: r / o });
  v.verdict = r / o >= c.target ? 'meets' : 'short';
  return v;
}

/** Ours' median time against an absolute limit. */
function secondsVerdict(m: Merged, c: Criterion): Verdict {
  const o = m.figures.find((f) => f.impl === OURS && f.case === c.caseKey);
  const v: Verdict = { label: c.label, target: `<= ${c.target} s`, verdict: 'n/a' };
  if (!o || o.status !== 'ok' || o.median_ms === undefined) {
    v.why = !o ? 'ours not measured' : `ours ${o.status}${o.note ? `: ${o.note}` : ''}`;
    if (o?.status === 'failed') v.verdict = 'short';
    return v;
  }
  v.ours = cell(o);
  v.verdict = o.median_ms <= c.target * 1000 ? 'meets' : 'short';
  return v;
}

/** The lowest ratio over every row where both sides have a time. */
function everyRowVerdict(m: Merged, c: Criterion): Verdict {
  const v: Verdict = { label: c.label, target: targetText(c), verdict: 'n/a' };
  let worst: { r: number; row: string } | undefined;
  let rowsCompared = 0;
  for (const ref of m.figures.filter((f) => f.impl === c.ref && f.status === 'ok')) {
    const ours = m.figures.find((f) => f.impl === OURS && f.case === ref.case && f.shape === ref.shape);
    if (ours?.status === 'wrong') {
      v.verdict = 'short';
      v.why = `ours gives a wrong result in ${ref.case} ${ref.shape}`;
      return v;
    }
    const r = ratio(ours, ref);
    if (r === undefined) continue;
    rowsCompared++;
    if (!worst || r < worst.r) worst = { r, row: `${ref.case} ${ref.shape}` };
  }
  if (!worst) {
    v.why = `no row measured by both kernelgrad and ${c.ref}`;
    return v;
  }
  Object.assign(v, { ours: `slowest: ${worst.row}`, ref: `${rowsCompared} rows`, ratio: worst.r });
  v.verdict = worst.r >= c.target ? 'meets' : 'short';
  return v;
}

export function renderVerdicts(m: Merged): string {
  const vs = verdicts(m);
  const lines = ['| acceptance | kernelgrad | reference | ratio | target | verdict |', '|---|---|---|---|---|---|'];
  for (const v of vs) {
    const ratioText = v.ratio === undefined ? '' : v.target.includes('%') ? `${(v.ratio * 100).toFixed(0)}%` : fmtRatio(v.ratio);
    const verdict = v.verdict === 'meets' ? 'meets' : v.verdict === 'short' ? '**short**' : v.verdict === 'info' ? '(info)' : 'n/a';
    lines.push(`| ${v.label} | ${v.ours ?? ''} | ${v.ref ?? ''} | ${ratioText} | ${v.target} | ${verdict}${v.why ? ` (${v.why})` : ''} |`);
  }
  return lines.join('\n');
}

export function renderEnv(m: Merged): string {
  const lines: string[] = [];
  for (const f of m.files) {
    const e = f.env;
    const v = Object.entries(e.versions).map(([k, x]) => `${k} ${x}`).join(', ');
    lines.push(
      `- **${e.framework}** on ` +
        (e.device === 'cuda'
          ? `GPU ${e.deviceName}${e.driver ? ` (driver ${e.driver})` : ''}, host ${e.cpu.model} with ${e.cpu.cores} cores`
          : `CPU ${e.deviceName}, ${e.cpu.cores} cores`) +
        `, ${e.os}, ${e.date}${e.quick ? ', --quick' : ''}; ${v}`,
    );
    for (const n of e.notes) lines.push(`  - ${n}`);
  }
  return lines.join('\n');
}

/** Notes attached to figures, listed once under the table. */
export function renderNotes(m: Merged): string {
  const seen = new Map<string, string[]>();
  for (const f of m.figures) {
    if (!f.note) continue;
    const k = `${f.impl}: ${f.note}`;
    const where = `${f.case} ${f.shape}`;
    const l = seen.get(k) ?? [];
    l.push(where);
    seen.set(k, l);
  }
  return [...seen.entries()].map(([k, w]) => `- ${k} — ${w.length > 3 ? `${w.length} rows` : w.join('; ')}`).join('\n');
}

export function renderAll(m: Merged): string {
  return [
    '## Environment', renderEnv(m), '',
    '## Results (median of repeats; "x REF" = REF time / kernelgrad time, above 1 = kernelgrad faster)', renderTable(m), '',
    '## Acceptance', renderVerdicts(m), '',
    '## Notes', renderNotes(m), '',
  ].join('\n');
}

/**
 * Replaces this device's section of a RESULTS.md (between `<!-- results:cpu -->` and
 * `<!-- /results:cpu -->`, or `cuda`), keeping the other device's. Creates the markers if absent.
 */
/** Replaces the file's section `section` (by default the device's: cpu, cuda) with this table. */
export function updateResultsFile(path: string, m: Merged, header: string, section: string = m.device): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const fs = require('fs') as typeof import('fs');
  const open = `<!-- results:${section} -->`;
  const close = `<!-- /results:${section} -->`;
  const body = `${open}\n${header}\n\n${renderAll(m).replace(/^## /gm, '### ')}\n${close}`;
  let text = fs.existsSync(path) ? fs.readFileSync(path, 'utf8') : '# kernelgrad benchmark results\n';
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  if (a >= 0 && b > a) text = text.slice(0, a) + body + text.slice(b + close.length);
  else text = `${text.trimEnd()}\n\n${body}\n`;
  fs.writeFileSync(path, text);
}

export function deviceHeading(m: Merged, isaCap?: string): string {
  const e = m.files.find((f) => f.env.framework === 'kernelgrad')?.env ?? m.files[0]?.env;
  if (!e) return `## ${m.device.toUpperCase()}`;
  const what = e.device === 'cuda' ? `GPU: ${e.deviceName}${e.driver ? `, driver ${e.driver}` : ''}` : `CPU: ${e.deviceName}, ${e.cpu.cores} cores`;
  const cap = isaCap ? `, every side capped at ${isaCap.toUpperCase()}` : '';
  return `## ${what}${cap} (${e.date.slice(0, 10)}${e.quick ? ', --quick' : ''})`;
}
