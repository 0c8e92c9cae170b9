/** The short table run.sh prints: adapter, checks by group, bench rows, GSM8K estimate, top kernels, training rows. */
import type { KitReport } from './main.ts';
import { formatTrainingLines } from '../../src/training/trainBenchReport.ts';

const gb = (b: number) => (b / 1e9).toFixed(1);

function pad(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

export function formatReport(r: KitReport): string {
  const out: string[] = [];
  const a = r.adapter;
  out.push(`device kit (${r.kit.mode}, ${r.kit.seconds.toFixed(0)} s, node ${r.kit.node}): ${r.ok ? 'OK' : 'FAILED'}`);
  if (a) {
    out.push(
      `adapter: ${a.engine.adapterInfo}${a.engine.isSoftware ? ' (software)' : ''}; subgroups ${a.subgroupMinSize ?? '?'}-${a.subgroupMaxSize ?? '?'}; shader-f16 ${a.engine.hasF16 ? 'yes' : 'no'}; timestamp-query ${a.features.includes('timestamp-query') ? 'yes' : 'no'}; maxBuffer ${gb(a.limits.maxBufferSize)} GB`,
    );
  }
  if (r.error) out.push(`error: ${r.error}`);
  const groups = new Map<string, { n: number; passed: number; worst: number }>();
  for (const c of r.checks.results) {
    const g = groups.get(c.group) ?? { n: 0, passed: 0, worst: 0 };
    g.n++;
    if (c.passed) g.passed++;
    if (c.maxErr !== undefined && c.tol) g.worst = Math.max(g.worst, c.maxErr / c.tol);
    groups.set(c.group, g);
  }
  if (groups.size > 0) {
    out.push(`checks: ${r.checks.passed} passed, ${r.checks.failed} failed`);
    out.push(
      pad([['group', 'passed', 'worst err/tol'], ...[...groups.entries()].map(([k, g]) => [k, `${g.passed}/${g.n}`, g.worst ? g.worst.toFixed(3) : '-'])]),
    );
    for (const c of r.checks.results.filter((x) => !x.passed))
      out.push(
        `  FAILED ${c.group}: ${c.name} ${c.error ?? (c.maxErr !== undefined ? `err ${c.maxErr.toExponential(2)} tol ${c.tol}` : `first difference at ${c.firstDiff}`)}`,
      );
  }
  const b = r.bench;
  if (b) {
    out.push(
      `bench: ${b.model}, ${b.mode}, ${(b.memory.total / 1e6).toFixed(0)} MB on the GPU, loaded in ${(b.loadMs / 1000).toFixed(1)} s; kernels ${b.kernels.q4Decode}/${b.kernels.prefillMatmul}`,
    );
    out.push(
      `copy bandwidth ${gb(b.copy.bytesPerSecond)} GB/s (copyBufferToBuffer ${gb(b.copy.copyBufferToBuffer)}, kernel ${gb(b.copy.kernel)}); prefill ${b.prefill.tokens} tokens: ${b.prefill.tokensPerSecond.toFixed(1)} tok/s (${b.prefill.ms.toFixed(0)} ms)`,
    );
    out.push(
      pad([
        ['batch', 'from pos', 'ms/step', 'tok/s', 'greedy ms/step', 'greedy tok/s', 'MB/step', 'efficiency', 'dispatches', 'encode ms'],
        ...b.decode.map((d) => [
          String(d.batch),
          String(d.position),
          d.msPerStep?.toFixed(2) ?? '-',
          d.tokensPerSecond?.toFixed(1) ?? '-',
          d.greedyMsPerStep.toFixed(2),
          d.greedyTokensPerSecond.toFixed(1),
          (d.bytesPerStep / 1e6).toFixed(1),
          d.efficiency.toFixed(3),
          String(d.dispatchesPerStep),
          d.encodeMsPerStep.toFixed(3),
        ]),
      ]),
    );
    if (b.gsm8k) {
      const g = b.gsm8k;
      out.push(
        `GSM8K estimate, ${g.label} (${g.problems} problems, ${g.promptTokens}-token prompts, <= ${g.maxNewTokens} new, batch ${g.batch}): ${(g.totalSeconds / 60).toFixed(1)} min = prefill ${(g.prefillSeconds / 60).toFixed(1)} + decode ${(g.decodeSeconds / 60).toFixed(1)}`,
      );
    }
    for (const p of b.profile ?? []) {
      out.push(`profile, batch ${p.batch} from pos ${p.position} (${p.dispatches} dispatches, one pass each): ${(p.totalUs / 1000).toFixed(2)} ms`);
      out.push(
        pad([
          ['kernel', 'count', 'us', 'share'],
          ...p.kernels.slice(0, 6).map((k) => [k.kernel, String(k.count), k.us.toFixed(0), `${(100 * k.share).toFixed(1)}%`]),
        ]),
      );
    }
    if (b.profileSkipped) out.push(`profile: ${b.profileSkipped}`);
  }
  if (r.benchError) out.push(`bench error: ${r.benchError}`);
  if (r.training) out.push(...formatTrainingLines(r.training));
  if (r.trainingError) out.push(`training error: ${r.trainingError}`);
  return out.join('\n');
}
