#!/usr/bin/env node
// Nimbus edge function launcher. Contract: README.md in this directory (it
// follows the Node launcher's, ../node/README.md, except where stated).
//
//   node launcher.mjs --socket <path>
//
// Listens on a Unix socket, warms its own HTTP path, prints `ready <pid>`,
// then waits to be specialized with one edge function (or routing
// middleware) and serves its requests. The process (server, control
// endpoints, warm-up, errors) is the Node launcher's ../node/lib/server.mjs;
// this file adds what is edge-specific: loading (lib/load.mjs), edge URL
// semantics, middleware mode and the error codes.

import { WARM_DIR, WEB_WARMUP, runLauncher } from '../node/lib/server.mjs';
import { callWebHandler, sendResponse } from '../node/lib/web.mjs';
import { loadEdgeFunction } from './lib/load.mjs';

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

async function dispatch(instance, req, res, store, held) {
  held?.release();
  preferForwardedHost(req);
  const response = await callWebHandler(instance.handle, req, res, store);
  if (instance.middleware && (response === undefined || response === null)) {
    // Middleware that returns nothing lets routing continue (spec 3.6).
    res.writeHead(200, { 'x-middleware-next': '1', 'content-length': '0' });
    res.end();
    return;
  }
  await sendResponse(req, res, response);
}

function validate(body) {
  if (body.middleware !== undefined && typeof body.middleware !== 'boolean') return '"middleware" must be a boolean';
  return undefined;
}

// The global Vercel's edge runtime defines; libraries test it to pick their
// edge code paths.
globalThis.EdgeRuntime = 'edge-runtime';

runLauncher({
  load: loadEdgeFunction,
  dispatch,
  errorCode: (request) => (request?.middleware === true ? 'MIDDLEWARE_INVOCATION_FAILED' : 'EDGE_FUNCTION_INVOCATION_FAILED'),
  validate,
  answer: (instance) => ({ bundled: instance.bundled }),
  // listener.js is only loaded (require() warmed): it is a (req, res) handler.
  warmup: [
    { body: { dir: WARM_DIR, config: { runtime: 'edge', entrypoint: 'listener.js' } }, requests: [] },
    { body: { dir: WARM_DIR, config: { runtime: 'edge', entrypoint: 'methods.mjs' } }, requests: WEB_WARMUP },
  ],
});
