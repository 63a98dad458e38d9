#!/usr/bin/env node
// Cold-start benchmark of the launchers: for each case, N times, starts a
// launcher, waits for `ready`, sleeps, then times POST /__nimbus/specialize and
// the first GET over a pre-opened keep-alive socket (raw net socket, so the
// client costs next to nothing). Prints p50/p99 of the launcher's initMs, the
// specialize round trip, the first request, and their sum (coldMs: the cold
// start as the worker sees it when it sends the first invocation after the
// specialize answer), and the stem cell's start (spawn to `ready`). Then, each
// from a launcher of its own, the same cold start with the first GET on a new
// connection after a `connection: close` specialize (newConnMs), sent right
// behind the specialize on a second connection (overlappedMs), and pipelined
// behind it on the same one (pipelinedMs).
//
//   node runtimes/node/testing/bench-specialize.mjs [--runs 30] [--sleep 200]
//        [--runtimes <dir with node/ and edge/>]... [--case <name>]...
//
// With several --runtimes (e.g. a copy of the launchers before a change and
// the working tree), their samples are taken alternately, so that load from
// other processes affects each about equally.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    sleep: { type: 'string', default: '200' },
    runtimes: { type: 'string', multiple: true, default: [path.resolve(here, '..', '..')] },
    case: { type: 'string', multiple: true },
  },
  strict: true,
});
const RUNS = Number(opts.runs);
const SLEEP_MS = Number(opts.sleep);
const RUNTIMES = opts.runtimes.map((dir) => path.resolve(dir));

const CASES = [
  {
    name: 'node-cjs-helpers',
    launcher: 'node',
    files: {
      'index.js': "module.exports = (req, res) => { res.status(200).send('hello'); };\n",
    },
    config: { runtime: 'nodejs20.x', handler: 'index.js', launcherType: 'Nodejs', shouldAddHelpers: true },
  },
  {
    name: 'node-esm-web-methods',
    launcher: 'node',
    files: {
      'index.mjs': "export function GET(request) { return new Response('hello'); }\n",
    },
    config: { runtime: 'nodejs20.x', handler: 'index.mjs', launcherType: 'Nodejs' },
  },
  {
    name: 'edge-default',
    launcher: 'edge',
    files: {
      'index.js': "export default function handler(request) { return new Response('hello'); }\n",
      'package.json': '{"type":"module"}\n',
    },
    config: { runtime: 'edge', entrypoint: 'index.js' },
  },
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Reads HTTP/1.1 responses off a raw socket: content-length or chunked bodies.
class RawClient {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.waiter = undefined;
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  static connect(socketPath) {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  #parse() {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const head = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = end + 4;
    if (headers['content-length'] !== undefined) {
      const stop = start + Number(headers['content-length']);
      if (this.buffer.length < stop) return undefined;
      return { status, headers, body: this.buffer.subarray(start, stop).toString(), rest: stop };
    }
    if (headers['transfer-encoding'] === 'chunked') {
      let at = start;
      let body = '';
      for (;;) {
        const lineEnd = this.buffer.indexOf('\r\n', at);
        if (lineEnd === -1) return undefined;
        const size = parseInt(this.buffer.subarray(at, lineEnd).toString(), 16);
        const dataEnd = lineEnd + 2 + size;
        if (this.buffer.length < dataEnd + 2) return undefined;
        if (size === 0) return { status, headers, body, rest: dataEnd + 2 };
        body += this.buffer.subarray(lineEnd + 2, dataEnd).toString();
        at = dataEnd + 2;
      }
    }
    return { status, headers, body: '', rest: start };
  }

  request(text) {
    this.socket.write(text);
    return this.response();
  }

  // The next response on the connection.
  async response() {
    for (;;) {
      const response = this.#parse();
      if (response !== undefined) {
        this.buffer = this.buffer.subarray(response.rest);
        return response;
      }
      if (this.error || this.closed) throw this.error ?? new Error('connection closed before the response');
      await new Promise((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  close() {
    this.socket.destroy();
  }
}

function specializeRequest(dir, config, close = false) {
  const body = JSON.stringify({ dir, config, env: {}, functionName: 'bench', deploymentId: 'dpl_bench', region: 'dev1' });
  return (
    'POST /__nimbus/specialize HTTP/1.1\r\nhost: instance\r\ncontent-type: application/json\r\n' +
    `${close ? 'connection: close\r\n' : ''}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

const GET = 'GET /api/hello?name=bench HTTP/1.1\r\nhost: bench.example.test\r\nx-forwarded-proto: https\r\nx-nimbus-id: bench-1\r\n\r\n';

async function startLauncher(runtimes, kind, socketPath) {
  const child = spawn(process.execPath, [path.join(runtimes, kind, 'launcher.mjs'), '--socket', socketPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: os.tmpdir() },
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (t) => (err += t));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line after 15 s: ${err}`)), 15000);
    child.stdout.setEncoding('utf8').on('data', (t) => {
      out += t;
      if (/^ready \d+\n/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`launcher exited (${code}) before ready: ${err}`)));
  });
  return child;
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGKILL');
  });
}

function checkHello(first) {
  if (first.status !== 200 || !first.body.startsWith('hello')) throw new Error(`first GET ${first.status}: ${first.body}`);
}

// Starts a launcher of `runtimes` for `fn`, waits for ready and SLEEP_MS,
// runs `measure(socketPath)` and stops the launcher. A sample whose
// responses are not the expected ones is { failed }.
async function coldStart(runtimes, fn, work, measure) {
  const socketPath = path.join(work, 'l.sock');
  const spawned = performance.now();
  const child = await startLauncher(runtimes, fn.launcher, socketPath);
  const readyMs = performance.now() - spawned;
  try {
    await sleep(SLEEP_MS);
    return { readyMs, ...(await measure(socketPath)) };
  } catch (err) {
    return { failed: err.message };
  } finally {
    await stop(child);
  }
}

// How the worker may run a cold start; each resolves with its timings.
const MODES = {
  // Specialize, then the first GET on the same keep-alive connection.
  async sequential(fn, socketPath) {
    const client = await RawClient.connect(socketPath);
    const t0 = performance.now();
    const spec = await client.request(specializeRequest(fn.dir, fn.config));
    const t1 = performance.now();
    const first = await client.request(GET);
    const t2 = performance.now();
    client.close();
    if (spec.status !== 200) throw new Error(`specialize ${spec.status}: ${spec.body}`);
    checkHello(first);
    return { initMs: JSON.parse(spec.body).initMs, specializeMs: t1 - t0, firstMs: t2 - t1, coldMs: t2 - t0 };
  },
  // Specialize with `connection: close` (as the worker does), then the first
  // GET on a new connection.
  async newConnection(fn, socketPath) {
    const control = await RawClient.connect(socketPath);
    const t0 = performance.now();
    await control.request(specializeRequest(fn.dir, fn.config, true));
    const client = await RawClient.connect(socketPath);
    const first = await client.request(GET);
    const t1 = performance.now();
    control.close();
    client.close();
    checkHello(first);
    return { newConnMs: t1 - t0 };
  },
  // The first GET sent right after the specialize POST on a second
  // connection (held by the launcher until specialization ends; may race it
  // and get 503).
  async overlapped(fn, socketPath) {
    const control = await RawClient.connect(socketPath);
    const client = await RawClient.connect(socketPath);
    const t0 = performance.now();
    const spec = control.request(specializeRequest(fn.dir, fn.config));
    const first = await client.request(GET);
    const t1 = performance.now();
    await spec;
    control.close();
    client.close();
    checkHello(first);
    return { overlappedMs: t1 - t0 };
  },
  // The first GET pipelined behind the specialize POST on one connection.
  async pipelined(fn, socketPath) {
    const client = await RawClient.connect(socketPath);
    const t0 = performance.now();
    client.socket.write(specializeRequest(fn.dir, fn.config) + GET);
    await client.response();
    const first = await client.response();
    const t1 = performance.now();
    client.close();
    checkHello(first);
    return { pipelinedMs: t1 - t0 };
  },
};

const KEYS = {
  sequential: ['readyMs', 'initMs', 'specializeMs', 'firstMs', 'coldMs'],
  newConnection: ['newConnMs'],
  overlapped: ['overlappedMs'],
  pipelined: ['pipelinedMs'],
};

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(samples, key) {
  const values = samples.filter((s) => s.failed === undefined).map((s) => s[key]).sort((a, b) => a - b);
  const failed = samples.length - values.length;
  const ms = (v) => `${v.toFixed(2).padStart(7)} ms`;
  const text = values.length === 0 ? '' : `p50 ${ms(percentile(values, 50))}   p99 ${ms(percentile(values, 99))}   min ${ms(values[0])}`;
  return `${key.padEnd(13)} ${text}${failed ? `   (${failed} failed: ${samples.find((s) => s.failed).failed})` : ''}`;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nimbus-bench-spec-'));
try {
  const selected = opts.case ? CASES.filter((c) => opts.case.includes(c.name)) : CASES;
  console.log(`node ${process.version}, ${RUNS} runs per case, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (const fn of selected) {
    fn.dir = path.join(work, `${fn.name}.func`);
    fs.mkdirSync(fn.dir);
    for (const [name, text] of Object.entries(fn.files)) fs.writeFileSync(path.join(fn.dir, name), text);
    fs.writeFileSync(path.join(fn.dir, '.vc-config.json'), JSON.stringify(fn.config));
    const samples = RUNTIMES.map(() => Object.fromEntries(Object.keys(MODES).map((mode) => [mode, []])));
    for (let i = 0; i < RUNS; i++) {
      for (const [r, runtimes] of RUNTIMES.entries()) {
        for (const [mode, measure] of Object.entries(MODES)) {
          samples[r][mode].push(await coldStart(runtimes, fn, work, (socketPath) => measure(fn, socketPath)));
        }
      }
    }
    for (const [r, runtimes] of RUNTIMES.entries()) {
      console.log(`\n${fn.name} (${path.join(runtimes, fn.launcher)})`);
      for (const [mode, keys] of Object.entries(KEYS)) {
        for (const key of keys) console.log(`  ${summary(samples[r][mode], key)}`);
      }
    }
    console.log(`load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
