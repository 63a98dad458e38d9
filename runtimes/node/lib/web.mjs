// Bridging Node's IncomingMessage/ServerResponse to Web Request/Response.

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);

function firstValue(header) {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header[0] : header;
  const comma = text.indexOf(',');
  return (comma === -1 ? text : text.slice(0, comma)).trim();
}

// The public URL of the request: x-forwarded-proto + Host (x-forwarded-host
// when Host is missing) + the path and query the function must see.
export function requestUrl(req) {
  const proto = firstValue(req.headers['x-forwarded-proto']) === 'https' ? 'https' : 'http';
  const host = req.headers.host || firstValue(req.headers['x-forwarded-host']) || 'localhost';
  const path = req.url ?? '/';
  if (path.charCodeAt(0) === 0x2f && path.charCodeAt(1) !== 0x2f) {
    const url = `${proto}://${host}${path}`;
    if (URL.canParse(url)) return url;
  }
  try {
    return new URL(path, `${proto}://${host}`).href;
  } catch {
    return new URL(path, `${proto}://localhost`).href;
  }
}

function hasBody(req) {
  if (NO_BODY_METHODS.has(req.method)) return false;
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

// A pull-driven Web stream over the Node request: reading pauses when the
// consumer is HighWaterMark bytes behind, resumes on pull.
function requestBodyStream(req) {
  let done = false;
  return new ReadableStream(
    {
      start(controller) {
        req.on('data', (chunk) => {
          if (done) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if (controller.desiredSize <= 0) req.pause();
        });
        req.once('end', () => {
          if (done) return;
          done = true;
          controller.close();
        });
        req.once('error', (err) => {
          if (done) return;
          done = true;
          controller.error(err);
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        done = true;
        req.resume();
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}

export function buildRequest(req, signal) {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  const init = { method: req.method, headers, signal };
  if (hasBody(req)) {
    init.body = requestBodyStream(req);
    init.duplex = 'half';
  }
  return new Request(requestUrl(req), init);
}

// Calls a Web handler with a Request built from the incoming message (its
// signal aborted when the client leaves before the response finished) and the
// context `{ waitUntil }`; resolves with what the handler returned.
export async function callWebHandler(handle, req, res, store) {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const request = buildRequest(req, controller.signal);
  return handle(request, { waitUntil: store.context.waitUntil });
}

function isResponseLike(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.status === 'number' &&
    value.headers !== null &&
    typeof value.headers === 'object'
  );
}

function waitForDrain(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

const NEXT_TURN = Symbol('next turn');

// Writes the status and headers, then the body chunk by chunk as the stream
// yields them (each write goes out at once: chunked encoding unless the
// Response set content-length). When the first chunk is not ready within the
// current event-loop turn the headers are flushed alone, so a client of a
// slow stream (server-sent events) sees the response start.
export async function sendResponse(req, res, response) {
  if (!isResponseLike(response)) {
    const got = response === null ? 'null' : typeof response === 'object' ? response.constructor?.name ?? 'object' : typeof response;
    throw new TypeError(`The handler must return a Response (or a Promise of one); it returned ${got}`);
  }
  const headers = [];
  const source = response.headers;
  const entries = typeof source[Symbol.iterator] === 'function' ? source : Object.entries(source);
  for (const [name, value] of entries) headers.push(name, value);
  if (typeof response.statusText === 'string' && response.statusText !== '') {
    res.writeHead(response.status, response.statusText, headers);
  } else {
    res.writeHead(response.status, headers);
  }
  const body = response.body;
  if (body === null || body === undefined) {
    res.end();
    return;
  }
  if (typeof body.getReader !== 'function') {
    // A Response-like object from another fetch implementation with a plain body.
    if (typeof body !== 'string' && !ArrayBuffer.isView(body)) throw new TypeError('Response body is not a ReadableStream');
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  if (req.method === 'HEAD' || response.status === 204 || response.status === 304) {
    body.cancel().catch(() => {});
    res.end();
    return;
  }
  const reader = body.getReader();
  let closed = false;
  const onClose = () => {
    if (res.writableFinished) return;
    closed = true;
    reader.cancel().catch(() => {});
  };
  res.once('close', onClose);
  try {
    const first = reader.read();
    let step = await Promise.race([first, new Promise((resolve) => setImmediate(resolve, NEXT_TURN))]);
    if (step === NEXT_TURN) {
      res.flushHeaders();
      step = await first;
    }
    while (!step.done && !closed) {
      const chunk = step.value;
      const ok = typeof chunk === 'string' ? res.write(chunk) : res.write(chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk));
      if (!ok && !closed) await waitForDrain(res);
      step = await reader.read();
    }
    if (!closed) res.end();
  } finally {
    res.off('close', onClose);
  }
}
