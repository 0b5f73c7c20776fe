import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { DeviceCloud } from '../test/support/device-cloud.js';
import { CLI, FLAGS, rssOf, startAgent } from './agent-under-test.js';
import { median } from './stats.js';

/**
 * `npm run bench -- soak` (not in CI): the agent as a field device runs it, for an hour —
 * one direct method a second, health telemetry every 10 s, the hub going away and coming
 * back every 10 minutes — with its RSS and V8 heap sampled every minute. Prints a table
 * and draws a PNG (gnuplot); target: RSS flat within ±3 % once the first 10 minutes are
 * over (V8 and the allocator settling in).
 *
 * For a short run: BENCH_SOAK_MINUTES (60), BENCH_SOAK_SAMPLE_SECONDS (60),
 * BENCH_SOAK_RECONNECT_MINUTES (10), BENCH_SOAK_SETTLE_MINUTES (10); BENCH_SOAK_OUT is
 * where the table, the data and the plot go (a new directory under /tmp by default).
 * BENCH_CLI and BENCH_FLAGS pick the build and node flags (see agent-under-test.ts).
 */
const MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 60);
const SAMPLE_MS = Number(process.env.BENCH_SOAK_SAMPLE_SECONDS ?? 60) * 1000;
const RECONNECT_MS = Number(process.env.BENCH_SOAK_RECONNECT_MINUTES ?? 10) * 60_000;
const SETTLE_MS = Number(process.env.BENCH_SOAK_SETTLE_MINUTES ?? 10) * 60_000;
const METHOD_MS = 1_000;
const TELEMETRY_SECONDS = 10;
/** The hub is away this long at each reconnect: the agent's backoff (test timings) brings it back within seconds. */
const HUB_AWAY_MS = 3_000;
const FLAT = 0.03;

interface Sample {
  minute: number;
  rssBytes: number;
  heapUsedBytes: number | null;
  /** Counts when the RSS was read. */
  calls: number;
  failed: number;
  reconnects: number;
}

export async function run(): Promise<void> {
  for (const [name, value] of Object.entries({ MINUTES, SAMPLE_MS, RECONNECT_MS, SETTLE_MS })) {
    if (!Number.isFinite(value) || value <= 0) throw new Error(`soak: ${name} must be a positive number (BENCH_SOAK_* settings)`);
  }
  requireGnuplot();
  const out = process.env.BENCH_SOAK_OUT ?? path.join(tmpdir(), `iot-agent-soak-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(out, { recursive: true });
  const dc = await DeviceCloud.start({ deviceId: 'soak-device', telemetry: { intervalSeconds: TELEMETRY_SECONDS } });
  // As in production: log level info.
  writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace('level: debug', 'level: info'));
  const agent = startAgent(dc.files, { timings: 'keepAlive=5,backoff=fast,spread=0' });
  const samples: Sample[] = [];
  let calls = 0;
  let failed = 0;
  let reconnects = 0;
  const done = new AbortController();
  const stopping = () => done.signal.aborted;
  try {
    await agent.waitForLog('to=ready');
    line(`soak: ${MINUTES} min, a method every ${METHOD_MS / 1000} s, telemetry every ${TELEMETRY_SECONDS} s, the hub away ${HUB_AWAY_MS / 1000} s every ${RECONNECT_MS / 60_000} min, a sample every ${SAMPLE_MS / 1000} s`);
    line(`agent: ${CLI}${FLAGS.length ? ` with ${FLAGS.join(' ')}` : ''}; output in ${out}`);
    const t0 = Date.now();
    const elapsed = () => Date.now() - t0;

    const methods = (async () => {
      while (!stopping()) {
        const next = Date.now() + METHOD_MS;
        try {
          const answer = await dc.invoke('ping', {}, 5);
          if (answer.status === 200) calls++;
          else failed++;
        } catch {
          failed++; // the hub is away: the caller sees DeviceNotOnline or a timeout
        }
        await sleep(Math.max(0, next - Date.now()), done.signal);
      }
    })();
    const outages = (async () => {
      // Half a sample before each interval's end, so that the samples fall between outages.
      for (let at = RECONNECT_MS - SAMPLE_MS / 2; !stopping(); at += RECONNECT_MS) {
        await sleep(Math.max(0, at - elapsed()), done.signal);
        if (stopping()) break;
        await dc.hub.stopMqtt();
        await sleep(HUB_AWAY_MS);
        await dc.hub.startMqtt();
        reconnects++;
      }
    })();

    for (let at = SAMPLE_MS; at <= MINUTES * 60_000; at += SAMPLE_MS) {
      await sleep(Math.max(0, at - elapsed()));
      const sample = { minute: at / 60_000, rssBytes: rssOf(agent.child.pid!), calls, failed, reconnects };
      // A short wait: while the hub is away the heap figure is missing rather than late.
      const heapUsedBytes = await heapUsed(dc);
      samples.push({ ...sample, heapUsedBytes });
      line(`  ${fmtMinute(sample.minute)} min  RSS ${mb(sample.rssBytes)}  heap ${heapUsedBytes === null ? '-' : mb(heapUsedBytes)}  calls ${calls} (failed ${failed})  reconnects ${reconnects}`);
    }
    done.abort();
    await Promise.all([methods, outages]);
    report(samples, dc.d2c('health').length, out);
  } finally {
    done.abort();
    await agent.stop();
    await dc.stop();
  }
}

/** The agent's V8 heap in use, as its getSystemInfo reports it (null while the hub is away). */
async function heapUsed(dc: DeviceCloud): Promise<number | null> {
  try {
    const answer = await dc.invoke('getSystemInfo', {}, 8);
    return (answer.payload as { agent?: { heapUsedBytes?: number } }).agent?.heapUsedBytes ?? null;
  } catch {
    return null;
  }
}

function report(samples: Sample[], healthMessages: number, out: string): void {
  const settled = samples.filter((s) => s.minute * 60_000 > SETTLE_MS);
  const reference = median(settled.map((s) => s.rssBytes));
  const deviation = (s: Sample) => (s.rssBytes - reference) / reference;
  const widest = settled.reduce((w, s) => (Math.abs(deviation(s)) > Math.abs(w) ? deviation(s) : w), 0);
  const flat = settled.length > 0 && Math.abs(widest) <= FLAT;
  const rows = [['minute', 'RSS MiB', 'heap MiB', 'RSS vs settled median', 'calls', 'failed', 'reconnects'],
    ...samples.map((s) => [fmtMinute(s.minute), mib(s.rssBytes), s.heapUsedBytes === null ? '-' : mib(s.heapUsedBytes),
      s.minute * 60_000 > SETTLE_MS ? pct(deviation(s)) : '(settling)', String(s.calls), String(s.failed), String(s.reconnects)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
  const last = samples.at(-1);
  const summary = [
    `RSS after the first ${SETTLE_MS / 60_000} min: median ${mb(reference)}, widest deviation ${pct(widest)} (target within ±${FLAT * 100} %) ${flat ? 'PASS' : 'MISS'}`,
    `${last?.calls ?? 0} methods answered, ${last?.failed ?? 0} not (while the hub was away), ${last?.reconnects ?? 0} hub outages, ${healthMessages} health messages; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ];
  writeFileSync(path.join(out, 'soak.txt'), `${table}\n${summary.join('\n')}\n`);
  writeFileSync(path.join(out, 'soak.tsv'), samples.map((s) => [s.minute, s.rssBytes / 2 ** 20, s.heapUsedBytes === null ? 'NaN' : s.heapUsedBytes / 2 ** 20].join('\t')).join('\n') + '\n');
  plot(out, reference);
  line(table);
  for (const l of summary) line(l);
  line(`table ${path.join(out, 'soak.txt')}, plot ${path.join(out, 'soak.png')}`);
  line(JSON.stringify({ bench: 'soak', minutes: MINUTES, cli: CLI, flags: FLAGS, rssMedianBytes: reference, widestDeviation: Math.round(widest * 10_000) / 10_000, flat,
    samples: samples.map((s) => ({ minute: s.minute, rssBytes: s.rssBytes, heapUsedBytes: s.heapUsedBytes })) }));
}

function plot(out: string, reference: number): void {
  const band = (f: number) => (reference * (1 + f)) / 2 ** 20;
  const script = [
    `set terminal png size 900,500`,
    `set output '${path.join(out, 'soak.png')}'`,
    `set title 'iot-agent soak: RSS and V8 heap in use, one method/s, telemetry every ${TELEMETRY_SECONDS} s, hub outage every ${RECONNECT_MS / 60_000} min'`,
    `set xlabel 'minutes'`, `set ylabel 'MiB'`, `set yrange [0:*]`, `set grid`, `set key bottom right`,
    `set arrow from ${SETTLE_MS / 60_000}, graph 0 to ${SETTLE_MS / 60_000}, graph 1 nohead dashtype 2`,
    `plot '${path.join(out, 'soak.tsv')}' using 1:2 with linespoints title 'RSS', '' using 1:3 with linespoints title 'heap in use', `
      + `${band(FLAT).toFixed(2)} dashtype 3 title '+3 %', ${band(-FLAT).toFixed(2)} dashtype 3 title '-3 %'`,
  ].join('\n');
  writeFileSync(path.join(out, 'soak.gnuplot'), `${script}\n`);
  execFileSync('gnuplot', [path.join(out, 'soak.gnuplot')], { stdio: ['ignore', 'ignore', 'inherit'] });
}

function requireGnuplot(): void {
  try {
    execFileSync('gnuplot', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('soak: gnuplot is missing (it draws the plot): install it with scripts/setup.sh (Debian package gnuplot-nox)');
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
const mb = (v: number) => `${(v / 2 ** 20).toFixed(1)} MiB`;
const mib = (v: number) => (v / 2 ** 20).toFixed(1);
const pct = (v: number) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)} %`;
const fmtMinute = (m: number) => (Number.isInteger(m) ? String(m) : m.toFixed(2));
const line = (text: string) => process.stdout.write(`${text}\n`);
