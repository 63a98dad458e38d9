// Test harness: starts launcher processes on temporary Unix sockets and talks
// HTTP/1.1 to them. Every wait is bounded. Kept outside test/ (as are the
// synthetic functions) because Node 20's `node --test <dir>` runs every
// .js/.mjs/.cjs file under a directory named `test` as a test file.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const LAUNCHER = path.resolve(here, '..', 'launcher.mjs');
export const FIXTURES = process.env.NIMBUS_FIXTURES ?? path.resolve(here, '..', '..', '..', '..', 'shared', 'fixtures');
export const SYNTHETIC = path.join(here, 'functions');

const START_TIMEOUT_MS = 15000;
const REQUEST_TIMEOUT_MS = 15000;

// Headers the worker adds before a function sees a request (spec 6.1).
export function platformHeaders(id = `tst1::${Math.random().toString(36).slice(2, 10)}`) {
  return {
    host: 'fixture.example.test',
    'x-forwarded-host': 'fixture.example.test',
    'x-forwarded-proto': 'https',
    'x-forwarded-for': '203.0.113.9',
    'x-real-ip': '203.0.113.9',
    'x-vercel-forwarded-for': '203.0.113.9',
    'x-vercel-deployment-url': 'fixture-abc123.example.test',
    'x-vercel-id': id,
  };
}

export async function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// Polls `check` (sync or async) until it returns a truthy value.
export async function waitFor(check, what, ms = 5000, interval = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

export class Launcher {
  // `launcher`: the launcher script to run (the edge harness passes its own).
  constructor(launcher = LAUNCHER) {
    this.launcher = launcher;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nimbus-node-test-'));
    this.socket = path.join(this.dir, 'launcher.sock');
    this.stdout = '';
    this.stderr = '';
    this.exited = false;
  }

  async start() {
    this.child = spawn(process.execPath, [this.launcher, '--socket', this.socket], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', NIMBUS_TEST_STEM_CELL: '1' },
    });
    this.child.stdout.setEncoding('utf8').on('data', (text) => (this.stdout += text));
    this.child.stderr.setEncoding('utf8').on('data', (text) => (this.stderr += text));
    const exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    exited.then(() => (this.exited = true));
    const ready = waitFor(() => /^ready \d+\n/m.test(this.stdout), 'the ready line', START_TIMEOUT_MS);
    const early = exited.then(({ code, signal }) => {
      throw new Error(`launcher exited before ready (code ${code}, signal ${signal}): ${this.stderr}`);
    });
    await Promise.race([ready, early]);
    early.catch(() => {});
    this.readyLine = this.stdout.match(/^ready (\d+)\n/m);
    return this;
  }

  async stop() {
    if (this.child && !this.exited) {
      const gone = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await withDeadline(gone, 5000, 'launcher exit').catch(() => {});
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // Sends one request; resolves with { status, headers, body (string), raw (Buffer) }.
  request({ method = 'GET', path: urlPath = '/', headers = {}, body, timeout = REQUEST_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.socket, method, path: urlPath, headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.once('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode, headers: res.headers, body: raw.toString('utf8'), raw });
        });
        res.once('error', reject);
      });
      req.setTimeout(timeout, () => req.destroy(new Error(`request ${method} ${urlPath} timed out after ${timeout} ms`)));
      req.once('error', reject);
      req.end(body);
    });
  }

  // Opens a request and resolves as soon as the response head arrives; the
  // caller reads the body from `res` (with `nextChunk`).
  open({ method = 'GET', path: urlPath = '/', headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath: this.socket, method, path: urlPath, headers, agent: false }, resolve);
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`request ${urlPath} timed out`)));
      req.once('error', reject);
      req.end(body);
    });
  }

  async specialize(dir, config, extra = {}) {
    const payload = { dir, config, env: {}, functionName: path.basename(dir), deploymentId: 'dpl_test', region: 'tst1', ...extra };
    const res = await this.request({
      method: 'POST',
      path: '/__nimbus/specialize',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    return { ...res, json: JSON.parse(res.body) };
  }

  async health() {
    const res = await this.request({ path: '/__nimbus/health' });
    return JSON.parse(res.body);
  }
}

export function readConfig(funcDir) {
  return JSON.parse(fs.readFileSync(path.join(funcDir, '.vc-config.json'), 'utf8'));
}

// Starts a launcher (`launcher`: the script, the Node launcher by default) and
// specializes it with the function in `funcDir` (config from its
// .vc-config.json unless given; the other options add to the body).
export async function startFunction(funcDir, { config, launcher: script, ...extra } = {}) {
  const launcher = await new Launcher(script).start();
  const result = await launcher.specialize(funcDir, config ?? readConfig(funcDir), extra);
  launcher.specializeResult = result;
  return launcher;
}

// Per-response queue of body chunks, so that neither a chunk nor the end is
// missed between two reads.
const bodyQueues = new WeakMap();

function bodyQueue(res) {
  let queue = bodyQueues.get(res);
  if (queue === undefined) {
    queue = { items: [], waiter: undefined };
    const push = (item) => {
      queue.items.push(item);
      const wake = queue.waiter;
      queue.waiter = undefined;
      wake?.();
    };
    res.on('data', (chunk) => push({ chunk: chunk.toString('utf8') }));
    res.once('end', () => push({ end: true }));
    res.once('error', (error) => push({ error }));
    bodyQueues.set(res, queue);
  }
  return queue;
}

// Resolves with the next body chunk of an open response (a string), or null
// at its end.
export async function nextChunk(res, ms = 5000) {
  const queue = bodyQueue(res);
  if (queue.items.length === 0) {
    await withDeadline(new Promise((resolve) => (queue.waiter = resolve)), ms, 'next response chunk');
  }
  const item = queue.items.shift();
  if (item.error) throw item.error;
  if (item.end) {
    queue.items.unshift(item);
    return null;
  }
  return item.chunk;
}

export async function readRest(res, ms = 5000) {
  let text = '';
  for (;;) {
    const chunk = await nextChunk(res, ms);
    if (chunk === null) return text;
    text += chunk;
  }
}

export function syntheticDir(name) {
  return path.join(SYNTHETIC, `${name}.func`);
}

// Registers before/after hooks in the current suite that start a launcher
// specialized with the function in `dir` (a function: evaluated in `before`,
// so it may depend on earlier hooks; options as for startFunction); returns a
// getter for the launcher.
export function useLauncher(dir, options = {}) {
  let launcher;
  before(async () => {
    launcher = await startFunction(typeof dir === 'function' ? dir() : dir, options);
  });
  after(async () => {
    await launcher?.stop();
  });
  return () => launcher;
}

// useLauncher() with the synthetic function `name`.
export function useFunction(name, options = {}) {
  return useLauncher(syntheticDir(name), options);
}
