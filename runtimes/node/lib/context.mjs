// Per-request context: AsyncLocalStorage, waitUntil tracking, the
// `@vercel/request-context` global, and the request-id prefix on log lines.

import { AsyncLocalStorage } from 'node:async_hooks';

export const requestStorage = new AsyncLocalStorage();

// Invocations whose response has not closed yet. Health reports its size; the
// log prefix falls back to the only member when a line has no async context.
export const activeInvocations = new Set();

let pendingWaitUntil = 0;

export function pendingWaitUntilCount() {
  return pendingWaitUntil;
}

// A line that carries no async context is still attributed to a request when
// exactly one is in flight; with several in flight it stays unprefixed.
function currentLogId() {
  const store = requestStorage.getStore();
  if (store !== undefined) return store.id;
  if (activeInvocations.size === 1) {
    for (const only of activeInvocations) return only.id;
  }
  return undefined;
}

function sanitizeId(value) {
  if (typeof value !== 'string' || value === '') return undefined;
  return value.replace(/[\r\n\]]/g, '_');
}

// The store every invocation runs in. `context` is what
// `globalThis[Symbol.for('@vercel/request-context')].get()` returns.
export function createInvocationStore(req, res, urlOf) {
  const id = sanitizeId(req.headers['x-vercel-id']) ?? sanitizeId(req.headers['x-nimbus-id']);
  const store = { id, req, res, context: undefined };
  const waitUntil = (promise) => trackWaitUntil(promise, store);
  store.context = {
    waitUntil,
    headers: req.headers,
    get url() {
      return urlOf(req);
    },
  };
  return store;
}

export function trackWaitUntil(promise, store) {
  pendingWaitUntil++;
  Promise.resolve(promise)
    .catch((err) => {
      logError(store, 'waitUntil promise rejected', err);
    })
    .finally(() => {
      pendingWaitUntil--;
    });
}

export function logError(store, what, err) {
  const detail = err instanceof Error ? (err.stack ?? String(err)) : String(err);
  const line = `${what}: ${detail}\n`;
  // Written inside the request's async context so every line carries the
  // request-id prefix; `store` may belong to a request that has already closed.
  if (store !== undefined && requestStorage.getStore() !== store) {
    requestStorage.run(store, () => process.stderr.write(line));
  } else {
    process.stderr.write(line);
  }
}

const requestContext = {
  get() {
    return requestStorage.getStore()?.context ?? {};
  },
};

// @vercel/functions (waitUntil, getContext) reads the first symbol; Next.js
// (`after`) reads the second. Installed before any user code is imported.
export function installRequestContext() {
  globalThis[Symbol.for('@vercel/request-context')] = requestContext;
  globalThis[Symbol.for('@next/request-context')] = requestContext;
}

const NEWLINE = 0x0a;

function prefixBytes(chunk, prefix, atLineStart) {
  const parts = [];
  if (atLineStart) parts.push(prefix);
  let start = 0;
  for (let i = chunk.indexOf(NEWLINE); i !== -1 && i < chunk.length - 1; i = chunk.indexOf(NEWLINE, i + 1)) {
    parts.push(chunk.subarray(start, i + 1), prefix);
    start = i + 1;
  }
  parts.push(chunk.subarray(start));
  return Buffer.concat(parts);
}

// Wraps stream.write so that every line written while a request is in flight
// starts with `[<id>] `. A line that began without a prefix (or with another
// request's) is not re-prefixed in the middle.
function prefixLines(stream) {
  const write = stream.write;
  let atLineStart = true;
  stream.write = function writeWithRequestId(chunk, encoding, callback) {
    const isString = typeof chunk === 'string';
    if (!isString && !(chunk instanceof Uint8Array)) return write.call(this, chunk, encoding, callback);
    if (chunk.length === 0) return write.call(this, chunk, encoding, callback);
    const id = currentLogId();
    if (id !== undefined) {
      const prefix = `[${id}] `;
      if (isString && (typeof encoding !== 'string' || /^utf-?8$/i.test(encoding))) {
        let text = chunk.replace(/\n(?=[^])/g, `\n${prefix}`);
        if (atLineStart) text = prefix + text;
        chunk = text;
      } else {
        const bytes = isString ? Buffer.from(chunk, encoding) : chunk;
        chunk = prefixBytes(bytes, Buffer.from(prefix), atLineStart);
        if (typeof encoding === 'string') encoding = undefined;
      }
    }
    atLineStart = typeof chunk === 'string'
      ? chunk.charCodeAt(chunk.length - 1) === NEWLINE
      : chunk[chunk.length - 1] === NEWLINE;
    return write.call(this, chunk, encoding, callback);
  };
}

export function installLogPrefix() {
  prefixLines(process.stdout);
  prefixLines(process.stderr);
}
