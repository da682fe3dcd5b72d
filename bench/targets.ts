// The targets of issues 10 and 11, checked against the medians of the bench's runs.
import { format, type Spread } from './stats.js';

export interface Target {
  readonly workload: string;
  readonly figure: string;
  readonly label: string;
  readonly op: '>=' | '<=';
  readonly value: number;
  readonly unit: string;
}

export const TARGETS: readonly Target[] = [
  {
    workload: 'saturation',
    figure: 'stepsPerSecond',
    label: '10-step saturation',
    op: '>=',
    value: 1500,
    unit: 'steps/s',
  },
  { workload: 'low', figure: 'endToEndP50', label: '10-step one at a time, e2e p50', op: '<=', value: 150, unit: 'ms' },
  { workload: 'low', figure: 'stepToStepP50', label: 'step-to-step p50', op: '<=', value: 12, unit: 'ms' },
  { workload: 'low', figure: 'stepToStepP99', label: 'step-to-step p99', op: '<=', value: 40, unit: 'ms' },
  {
    workload: 'saturation',
    figure: 'cpuMsPerStepControlPlane',
    label: 'control-plane CPU at saturation',
    op: '<=',
    value: 0.3,
    unit: 'ms/step',
  },
  {
    workload: 'saturation',
    figure: 'sqlRoundTripsPerStep',
    label: 'SQL round trips at saturation',
    op: '<=',
    value: 1,
    unit: '/step',
  },
  {
    workload: 'foreach',
    figure: 'itemsPerSecond',
    label: 'forEach items/s (10,000, c 100, 20 ms)',
    op: '>=',
    value: 1000,
    unit: 'items/s',
  },
  {
    workload: 'foreach',
    figure: 'controlPlanePeakMiB',
    label: 'forEach control-plane peak memory',
    op: '<=',
    value: 300,
    unit: 'MiB',
  },
  // Issue 11: state written once.
  {
    workload: 'foreach-wide',
    figure: 'itemsPerSecond',
    label: '(11) forEach items/s (10,000, c 200, 20 ms)',
    op: '>=',
    value: 2000,
    unit: 'items/s',
  },
  {
    workload: 'foreach-wide',
    figure: 'controlPlanePeakMiB',
    label: '(11) forEach (c 200) control-plane peak memory',
    op: '<=',
    value: 300,
    unit: 'MiB',
  },
  {
    workload: 'saturation',
    figure: 'stepsPerSecond',
    label: '(11) 10-step saturation',
    op: '>=',
    value: 2500,
    unit: 'steps/s',
  },
  {
    workload: 'saturation',
    figure: 'walBytesPerStep',
    label: '(11) WAL per step at saturation',
    op: '<=',
    value: 2500,
    unit: 'bytes',
  },
  {
    workload: 'saturation',
    figure: 'indexInsertionsPerStep',
    label: '(11) index insertions per step',
    op: '<=',
    value: 6,
    unit: '/step',
  },
  // Issue 11: reporting over 1,000,000 events with a 1-hour window (BENCH_WORKLOADS=reporting).
  {
    workload: 'reporting',
    figure: 'v2ExecutionSummaryMs',
    label: 'reporting_v2.execution_summary, 1 h',
    op: '<=',
    value: 200,
    unit: 'ms',
  },
  {
    workload: 'reporting',
    figure: 'v2StepLatencyMs',
    label: 'reporting_v2.step_latency, 1 h',
    op: '<=',
    value: 200,
    unit: 'ms',
  },
  {
    workload: 'reporting',
    figure: 'v2ThroughputPerMinuteMs',
    label: 'reporting_v2.throughput_per_minute, 1 h',
    op: '<=',
    value: 200,
    unit: 'ms',
  },
];

/** Whether a median meets its target: 'yes', 'no', or 'n/a' when the figure is missing. */
export function verdict(target: Target, median: number | undefined): 'yes' | 'no' | 'n/a' {
  if (median === undefined || !Number.isFinite(median)) return 'n/a';
  return (target.op === '>=' ? median >= target.value : median <= target.value) ? 'yes' : 'no';
}

/** The targets table: one line per target whose workload ran. */
export function targetsTable(summary: Record<string, Record<string, Spread>>): string[] {
  const rows = TARGETS.filter((t) => summary[t.workload] !== undefined).map((t) => {
    const s = summary[t.workload]?.[t.figure];
    const figure = s === undefined ? 'n/a' : `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
    return [t.label, figure, `${t.op === '>=' ? '≥' : '≤'} ${format(t.value)} ${t.unit}`, verdict(t, s?.median)];
  });
  const header = ['target', 'median (min–max)', 'target', 'met'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  return [line(header), ...rows.map(line)];
}
