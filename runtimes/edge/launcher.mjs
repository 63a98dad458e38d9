#!/usr/bin/env node
// Nimbus edge function launcher. Contract: README.md in this directory (it
// follows the Node launcher's, ../node/README.md, except where stated).
//
//   node launcher.mjs --socket <path>
//
// Listens on a Unix socket, warms its own HTTP path, prints `ready <pid>`,
// then waits to be specialized with one edge function (or routing
// middleware) and serves its requests.

import fs from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { holdBody } from '../node/lib/body.mjs';
import {
  activeInvocations,
  createInvocationStore,
  installLogPrefix,
  installRequestContext,
  logError,
  pendingWaitUntilCount,
  requestStorage,
} from '../node/lib/context.mjs';
import { buildRequest, requestUrl, sendResponse } from '../node/lib/web.mjs';
import { loadEdgeFunction } from './lib/load.mjs';

const CONTROL_PREFIX = '/__nimbus/';
const SPECIALIZE_PATH = '/__nimbus/specialize';
const HEALTH_PATH = '/__nimbus/health';
const WARMUP_PATH = '/__nimbus/warmup';
const MAX_SPECIALIZE_BODY = 16 * 1024 * 1024;

// idle -> specializing -> ready | failed
let state = 'idle';
let instance; // { shape, bundled, handle } once ready
let failure; // the JSON body of a failed specialization
let whenSpecialized; // settles when state leaves 'specializing'
let functionName = '';
let middleware = false;
let errorCode = 'EDGE_FUNCTION_INVOCATION_FAILED';

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function controlPath(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

// ---- invocations -----------------------------------------------------------

// An error escaped the handler (thrown, rejected, a non-Response returned, or
// uncaught in its async context). Answer 500 if nothing was sent yet, else cut
// the response short.
function failInvocation(store, err) {
  const { res } = store;
  if (res.destroyed && err?.name === 'AbortError') return; // the client left
  logError(store, `${errorCode} in ${functionName || 'function'}`, err);
  if (!res.headersSent) {
    const body = `A server error has occurred\n\n${errorCode}\n\n${store.id ?? ''}\n`;
    res.writeHead(500, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-vercel-error': errorCode,
    });
    res.end(body);
  } else if (!res.writableEnded) {
    res.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}

async function dispatch(req, res, store) {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const request = buildRequest(req, controller.signal);
  const response = await instance.handle(request, { waitUntil: store.context.waitUntil });
  if (middleware && (response === undefined || response === null)) {
    // Middleware that returns nothing lets routing continue (spec 3.6).
    res.writeHead(200, { 'x-middleware-next': '1', 'content-length': '0' });
    res.end();
    return;
  }
  await sendResponse(req, res, response);
}

async function runInvocation(req, res, store) {
  try {
    let held;
    if (state === 'specializing') {
      held = holdBody(req);
      await whenSpecialized;
    }
    held?.release();
    if (state === 'ready') await dispatch(req, res, store);
    else if (state === 'failed') sendJson(res, 500, failure);
    else sendJson(res, 503, { ok: false, error: `not specialized: POST ${SPECIALIZE_PATH} first` });
  } catch (err) {
    failInvocation(store, err);
  }
}

// Edge semantics (spec 3.5): the public host is `x-forwarded-host` (then
// Host), and the Request's Host header is set to it. The worker normally
// sends both equal, so this rarely changes anything; the URL is then built by
// the Node launcher's bridge, which reads Host.
function preferForwardedHost(req) {
  // Node joins repeated x-forwarded-host headers with ", ".
  const forwarded = req.headers['x-forwarded-host']?.split(',')[0].trim();
  if (!forwarded || forwarded === req.headers.host) return;
  req.headers.host = forwarded;
  const raw = req.rawHeaders;
  const at = raw.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'host');
  if (at === -1) raw.push('Host', forwarded);
  else raw[at + 1] = forwarded;
}

function invoke(req, res) {
  preferForwardedHost(req);
  const store = createInvocationStore(req, res, requestUrl);
  activeInvocations.add(store);
  res.once('close', () => activeInvocations.delete(store));
  requestStorage.run(store, runInvocation, req, res, store);
}

// ---- control endpoints -----------------------------------------------------

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_SPECIALIZE_BODY) throw new Error(`body larger than ${MAX_SPECIALIZE_BODY} bytes`);
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function validateSpecialize(body) {
  if (body === null || typeof body !== 'object') return 'body must be a JSON object';
  if (typeof body.dir !== 'string' || body.dir === '') return '"dir" must be a non-empty string';
  if (body.config === null || typeof body.config !== 'object') return '"config" must be the .vc-config.json object';
  if (body.env !== undefined && (body.env === null || typeof body.env !== 'object')) return '"env" must be an object';
  if (body.middleware !== undefined && typeof body.middleware !== 'boolean') return '"middleware" must be a boolean';
  return undefined;
}

let specializeClaimed = false;

async function specialize(req, res) {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' });
    res.end();
    return;
  }
  if (specializeClaimed) {
    sendJson(res, 409, { ok: false, error: `already specialized (state: ${state})` });
    return;
  }
  specializeClaimed = true;
  let request;
  try {
    request = await readJson(req);
  } catch (err) {
    specializeClaimed = false;
    sendJson(res, 400, { ok: false, error: `invalid specialize body: ${err.message}` });
    return;
  }
  const invalid = validateSpecialize(request);
  if (invalid !== undefined) {
    specializeClaimed = false;
    sendJson(res, 400, { ok: false, error: `invalid specialize body: ${invalid}` });
    return;
  }
  functionName = typeof request.functionName === 'string' ? request.functionName : '';
  middleware = request.middleware === true;
  if (middleware) errorCode = 'MIDDLEWARE_INVOCATION_FAILED';
  state = 'specializing';
  let settle;
  whenSpecialized = new Promise((resolve) => {
    settle = resolve;
  });
  const started = performance.now();
  try {
    instance = await loadEdgeFunction(request);
    state = 'ready';
    const initMs = Math.round((performance.now() - started) * 10) / 10;
    sendJson(res, 200, { ok: true, initMs, shape: instance.shape, bundled: instance.bundled });
  } catch (err) {
    state = 'failed';
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    failure = { ok: false, error: message };
    process.stderr.write(`specialize failed for ${functionName || request.dir}: ${message}\n`);
    sendJson(res, 500, failure);
  } finally {
    settle();
  }
}

function health(_req, res) {
  sendJson(res, 200, { inflight: activeInvocations.size, pendingWaitUntil: pendingWaitUntilCount() });
}

// The stem cell's self-request: runs the Web bridge (Request from the
// incoming message, streamed body both ways) and the request context, so the
// first real invocation does not pay for loading and compiling them.
async function warmup(req, res) {
  const store = createInvocationStore(req, res, requestUrl);
  await requestStorage.run(store, async () => {
    const request = buildRequest(req, new AbortController().signal);
    const payload = await request.json();
    await sendResponse(req, res, Response.json({ ok: true, echo: payload, url: request.url }));
  });
}

function controlHandler(path) {
  if (path === HEALTH_PATH) return health;
  if (path === SPECIALIZE_PATH) return specialize;
  if (path === WARMUP_PATH && state === 'idle') return warmup;
  return undefined;
}

async function runControl(control, path, req, res) {
  try {
    await control(req, res);
  } catch (err) {
    logError(undefined, path, err);
    if (!res.headersSent) sendJson(res, 500, { ok: false, error: String(err) });
  }
}

function onRequest(req, res) {
  const url = req.url ?? '/';
  if (url.startsWith(CONTROL_PREFIX)) {
    const path = controlPath(url);
    const control = controlHandler(path);
    if (control !== undefined) return runControl(control, path, req, res);
  }
  invoke(req, res);
}

// ---- process ---------------------------------------------------------------

function attributeEscapedError(kind, err) {
  const store = requestStorage.getStore();
  if (store !== undefined && store.res !== undefined && !store.res.writableEnded) {
    failInvocation(store, err);
  } else {
    logError(store, kind, err);
  }
}

function sendWarmupRequest(socketPath) {
  const body = JSON.stringify({ warm: true, list: [1, 2, 3] });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method: 'POST',
        path: `${WARMUP_PATH}?q=1`,
        agent: false,
        headers: { host: 'localhost', 'content-type': 'application/json', 'x-forwarded-proto': 'http' },
      },
      (res) => {
        res.resume();
        res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`warm-up answered ${res.statusCode}`))));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

function removeStaleSocket(socketPath) {
  try {
    fs.unlinkSync(socketPath);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
}

async function main() {
  const { values } = parseArgs({ options: { socket: { type: 'string' } }, strict: true });
  if (!values.socket) {
    process.stderr.write('usage: node launcher.mjs --socket <path>\n');
    process.exit(2);
  }
  // The global Vercel's edge runtime defines; libraries test it to pick their
  // edge code paths.
  globalThis.EdgeRuntime = 'edge-runtime';
  installRequestContext();
  installLogPrefix();
  process.on('uncaughtException', (err) => attributeEscapedError('Uncaught exception', err));
  process.on('unhandledRejection', (err) => attributeEscapedError('Unhandled rejection', err));

  removeStaleSocket(values.socket);
  const server = http.createServer({ requireHostHeader: false, maxHeaderSize: 64 * 1024 }, onRequest);
  // The worker owns deadlines and connection lifetimes.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 0;
  server.timeout = 0;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(values.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await sendWarmupRequest(values.socket);
  process.stdout.write(`ready ${process.pid}\n`);
}

main().catch((err) => {
  process.stderr.write(`launcher failed to start: ${err.stack ?? err}\n`);
  process.exit(1);
});
