// The process both launchers run (contract: ../README.md): the HTTP server on
// the Unix socket, the stem cell's warm-up, the control endpoints (health,
// and specialize: idle -> specializing -> ready | failed), invocations (held
// while specializing, refused before, answered with the failure after a
// failed specialization), handler errors, and errors escaping into the
// process. What differs between the launchers comes in runLauncher()'s
// options.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { holdBody } from './body.mjs';
import {
  activeInvocations,
  createInvocationStore,
  installLogPrefix,
  installRequestContext,
  logError,
  pendingWaitUntilCount,
  requestStorage,
} from './context.mjs';
import { requestUrl } from './web.mjs';

const CONTROL_PREFIX = '/__nimbus/';
const SPECIALIZE_PATH = '/__nimbus/specialize';
const HEALTH_PATH = '/__nimbus/health';
const MAX_SPECIALIZE_BODY = 16 * 1024 * 1024;

// Marks the 500 an invocation gets because specialization failed (its body is
// the failure JSON); the worker turns it into the platform's error.
export const SPECIALIZE_FAILED_HEADER = 'x-nimbus-specialize-failed';
export const AWAIT_SPECIALIZE_HEADER = 'x-nimbus-await-specialize';

// The stem cell specializes itself with the warm-up functions in WARM_DIR
// (listener.js: CommonJS by its package.json, (req, res) with the helpers;
// methods.mjs: ESM per-method Web handlers) and sends each the self-requests
// below, all through the same code a real function's specialization and
// first requests take, so those find it compiled: require() and import() of
// a function module, export detection, the helpers, the Web bridge, holding a
// body back, the specialize endpoint itself.
export const WARM_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'warm');
const WARM_JSON = { 'content-type': 'application/json' };
const WARM_PATH = '/__nimbus/warmup';
export const LISTENER_WARMUP = [
  {
    method: 'POST',
    path: `${WARM_PATH}?name=warm&list=1&list=2`,
    headers: { ...WARM_JSON, cookie: 'a=1; b="2"' },
    body: JSON.stringify({ warm: true, list: [1, 2, 3] }),
  },
  { method: 'GET', path: `${WARM_PATH}?name=warm` },
];
export const WEB_WARMUP = [
  { method: 'POST', path: `${WARM_PATH}?q=1`, headers: WARM_JSON, body: JSON.stringify({ warm: true, list: [1, 2, 3] }) },
  { method: 'GET', path: `${WARM_PATH}?name=warm` },
];

function sendJson(res, status, value, headers) {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function controlPath(url) {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let ended = false;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.once('end', () => {
      ended = true;
      if (size > limit) reject(new Error(`body larger than ${limit} bytes`));
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
    req.once('error', reject);
    req.once('close', () => {
      if (!ended) reject(new Error('the connection closed before the body ended'));
    });
  });
}

function validateSpecialize(body, validate) {
  if (body === null || typeof body !== 'object') return 'body must be a JSON object';
  if (typeof body.dir !== 'string' || body.dir === '') return '"dir" must be a non-empty string';
  if (body.config === null || typeof body.config !== 'object') return '"config" must be the .vc-config.json object';
  if (body.env !== undefined && (body.env === null || typeof body.env !== 'object')) return '"env" must be an object';
  return validate?.(body);
}

// The parsed, validated specialize body; throws with the reason it is not one.
async function readSpecializeBody(req, validate) {
  const body = JSON.parse((await readBody(req, MAX_SPECIALIZE_BODY)).toString('utf8'));
  const invalid = validateSpecialize(body, validate);
  if (invalid !== undefined) throw new Error(invalid);
  return body;
}

function selfRequest(socketPath, { method, path: urlPath, headers, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method,
        path: urlPath,
        agent: false,
        headers: { host: 'localhost', 'x-forwarded-host': 'warm.localhost', 'x-forwarded-proto': 'https', ...headers },
      },
      (res) => {
        res.resume();
        res.once('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new Error(`warm-up ${method} ${urlPath} answered ${res.statusCode}`));
        });
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

// Puts process.env back to `saved` (a copy taken earlier).
function restoreEnvironment(saved) {
  for (const name of Object.keys(process.env)) {
    if (!Object.hasOwn(saved, name)) delete process.env[name];
  }
  Object.assign(process.env, saved);
}

// Runs the launcher process. Options (what differs between launchers):
//   load(request)        the function of a specialize request -> instance ({ shape, ... })
//   fastDispatch(instance, req, res, store)
//                        optional: serves an invocation on a ready instance
//                        without going through an async function; returns
//                        undefined or the handler's promise
//   dispatch(instance, req, res, store, held)
//                        serves one invocation; `held` (a holdBody() of the
//                        request, or undefined) must be released before the
//                        handler reads the body
//   errorCode(request)   the x-vercel-error code of handler errors (request:
//                        the specialize body, undefined before one)
//   validate(body)       optional further check of a specialize body -> reason | undefined
//   answer(instance)     optional fields added to the 200 specialize answer
//   clientError(err, res) optional: answers an error that is the client's
//                        fault itself and returns true (no 500, nothing logged)
//   warmup               [{ body, requests }]: the stem cell's warm-up, one
//                        specialize body (a function in WARM_DIR) and the
//                        self-requests (LISTENER_WARMUP, WEB_WARMUP) it gets
export function runLauncher(options) {
  // idle -> specializing -> ready | failed
  let state = 'idle';
  let instance; // once ready
  let failure; // the JSON body of a failed specialization
  let whenSpecialized; // settles when state leaves 'specializing'
  // Settles when a specialize request arrives; invocations marked
  // x-nimbus-await-specialize wait for it (the worker sends them alongside).
  let specializeArrived;
  let announceSpecialize;
  const expectSpecialize = () => {
    specializeArrived = new Promise((resolve) => {
      announceSpecialize = resolve;
    });
  };
  expectSpecialize();
  let specializeClaimed = false;
  let functionName = '';
  let errorCode = options.errorCode(undefined);

  // ---- invocations ---------------------------------------------------------

  // An error escaped the handler (thrown, rejected, or uncaught in its async
  // context). Answer 500 if nothing was sent yet, else cut the response short.
  function failInvocation(store, err) {
    const { res } = store;
    if (options.clientError?.(err, res)) return;
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

  // The common case, a ready instance, runs without an extra promise: under the request
  // context every promise costs async hooks.
  function runInvocation(req, res, store) {
    if (state !== 'ready' || options.fastDispatch === undefined) return runHeldInvocation(req, res, store);
    try {
      const result = options.fastDispatch(instance, req, res, store);
      if (result !== undefined && typeof result.then === 'function') {
        result.then(undefined, (err) => failInvocation(store, err));
      }
    } catch (err) {
      failInvocation(store, err);
    }
    return undefined;
  }

  async function runHeldInvocation(req, res, store) {
    try {
      let held;
      if (state === 'idle' && req.headers[AWAIT_SPECIALIZE_HEADER] !== undefined) {
        held = holdBody(req);
        await specializeArrived;
      }
      if (state === 'specializing') {
        held ??= holdBody(req);
        await whenSpecialized;
      }
      if (state !== 'ready') {
        held?.release();
        if (state === 'failed') sendJson(res, 500, failure, { [SPECIALIZE_FAILED_HEADER]: '1' });
        else sendJson(res, 503, { ok: false, error: `not specialized: POST ${SPECIALIZE_PATH} first` });
        return;
      }
      await options.dispatch(instance, req, res, store, held);
    } catch (err) {
      failInvocation(store, err);
    }
  }

  function invoke(req, res) {
    const store = createInvocationStore(req, res, requestUrl);
    activeInvocations.add(store);
    res.once('close', () => activeInvocations.delete(store));
    requestStorage.run(store, runInvocation, req, res, store);
  }

  // ---- control endpoints ---------------------------------------------------

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
    // Invocations wait from now on, while the body is read too: one
    // pipelined right behind this request is held, not refused.
    state = 'specializing';
    let settle;
    whenSpecialized = new Promise((resolve) => {
      settle = resolve;
    });
    announceSpecialize();
    let request;
    try {
      request = await readSpecializeBody(req, options.validate);
    } catch (err) {
      specializeClaimed = false;
      state = 'idle';
      expectSpecialize();
      settle();
      sendJson(res, 400, { ok: false, error: `invalid specialize body: ${err.message}` });
      return;
    }
    functionName = typeof request.functionName === 'string' ? request.functionName : '';
    errorCode = options.errorCode(request);
    const started = performance.now();
    try {
      instance = await options.load(request);
      state = 'ready';
      const initMs = Math.round((performance.now() - started) * 10) / 10;
      sendJson(res, 200, { ok: true, initMs, shape: instance.shape, ...options.answer?.(instance) });
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

  function health(req, res) {
    sendJson(res, 200, { inflight: activeInvocations.size, pendingWaitUntil: pendingWaitUntilCount() });
  }

  function controlHandler(urlPath) {
    if (urlPath === HEALTH_PATH) return health;
    if (urlPath === SPECIALIZE_PATH) return specialize;
    return undefined;
  }

  async function runControl(control, urlPath, req, res) {
    try {
      await control(req, res);
    } catch (err) {
      logError(undefined, urlPath, err);
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: String(err) });
    }
  }

  function onRequest(req, res) {
    const url = req.url ?? '/';
    if (url.startsWith(CONTROL_PREFIX)) {
      const urlPath = controlPath(url);
      const control = controlHandler(urlPath);
      if (control !== undefined) return runControl(control, urlPath, req, res);
    }
    invoke(req, res);
  }

  // ---- process -------------------------------------------------------------

  function attributeEscapedError(kind, err) {
    const store = requestStorage.getStore();
    if (store !== undefined && store.res !== undefined && !store.res.writableEnded) {
      failInvocation(store, err);
    } else {
      logError(store, kind, err);
    }
  }

  // Specializes the stem cell with each warm-up function in turn, sends it
  // its self-requests, and goes back to idle; then puts back the environment,
  // working directory and source-map setting the specializations changed.
  async function warmUp(socketPath) {
    const env = { ...process.env };
    const cwd = process.cwd();
    const sourceMaps = process.sourceMapsEnabled;
    for (const { body, requests } of options.warmup ?? []) {
      const specializeBody = JSON.stringify({ env: {}, functionName: 'warm-up', deploymentId: 'dpl_warm', region: 'warm1', ...body });
      await selfRequest(socketPath, { method: 'POST', path: SPECIALIZE_PATH, headers: WARM_JSON, body: specializeBody });
      for (const request of requests) await selfRequest(socketPath, request);
      state = 'idle';
      expectSpecialize();
      instance = undefined;
      specializeClaimed = false;
      functionName = '';
      errorCode = options.errorCode(undefined);
    }
    restoreEnvironment(env);
    process.chdir(cwd);
    if (typeof sourceMaps === 'boolean') process.setSourceMapsEnabled(sourceMaps);
  }

  async function main() {
    const { values } = parseArgs({ options: { socket: { type: 'string' } }, strict: true });
    if (!values.socket) {
      process.stderr.write('usage: node launcher.mjs --socket <path>\n');
      process.exit(2);
    }
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
    await warmUp(values.socket);
    process.stdout.write(`ready ${process.pid}\n`);
  }

  main().catch((err) => {
    process.stderr.write(`launcher failed to start: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
