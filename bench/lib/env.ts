// The run's environment for the JSON and the table: device name, driver, CPU, versions, date.
import { execFileSync } from 'child_process';
import * as os from 'os';
import type { Env } from './schema';

function sh(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10000 }).trim();
  } catch {
    return undefined;
  }
}

/** The CPU as lscpu names it, with family/model, L3 and the SIMD it has (VMs often hide the SKU). */
export function cpuModel(): string {
  const l = sh('lscpu', []);
  const get = (k: string) => (l ? new RegExp(`^${k}:\\s*(.+)$`, 'm').exec(l)?.[1]?.trim() : undefined);
  const name = get('Model name') ?? os.cpus()[0]?.model?.trim() ?? 'unknown CPU';
  const extra: string[] = [];
  const fam = get('CPU family');
  const model = get('Model');
  if (fam && model) extra.push(`family ${fam} model ${model}`);
  const l3 = get('L3 cache');
  if (l3) extra.push(`L3 ${l3.replace(/\s*\(.*\)/, '')}`);
  const flags = get('Flags')?.split(/\s+/) ?? [];
  const simd = ['avx512f', 'avx2', 'fma', 'avx'].filter((f) => flags.includes(f));
  if (simd.length) extra.push(simd.join(' '));
  const hv = get('Hypervisor vendor');
  if (hv) extra.push(`${hv} guest`);
  return extra.length ? `${name} (${extra.join(', ')})` : name;
}

export function gpuInfo(): { name?: string; driver?: string } {
  const q = sh('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader']);
  if (!q) return {};
  const [name, driver] = q.split('\n')[0].split(',').map((s) => s.trim());
  return { name, driver };
}

export function collectEnv(o: { framework?: Env['framework']; device: 'cpu' | 'cuda'; quick: boolean; deviceName?: string; versions: Record<string, string>; notes: string[] }): Env {
  const g = o.device === 'cuda' ? gpuInfo() : {};
  const cpu = cpuModel();
  return {
    date: new Date().toISOString(),
    framework: o.framework ?? 'kernelgrad',
    device: o.device,
    deviceName: o.device === 'cuda' ? g.name ?? o.deviceName ?? 'unknown GPU' : cpu,
    driver: g.driver,
    cpu: { model: cpu, cores: os.cpus().length },
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    quick: o.quick,
    argv: process.argv.slice(2),
    versions: { node: process.version, ...o.versions },
    notes: o.notes,
  };
}
