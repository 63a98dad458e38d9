#!/usr/bin/env node
// Nimbus Node.js function launcher. Contract: README.md in this directory.
//
//   node launcher.mjs --socket <path>
//
// Listens on a Unix socket, warms its own HTTP path, prints `ready <pid>`,
// then waits to be specialized with one function and serves its requests.
// The process (server, control endpoints, warm-up, errors) is lib/server.mjs,
// shared with the edge launcher; this file adds what is Node-specific: how a
// function is loaded (lib/specialize.mjs) and the Vercel helpers.

import { holdBody } from './lib/body.mjs';
import { ApiError, addHelpers } from './lib/helpers.mjs';
import { LISTENER_WARMUP, WARM_DIR, WEB_WARMUP, runLauncher } from './lib/server.mjs';
import { loadFunction } from './lib/specialize.mjs';

// Without helpers nothing is read first: the handler runs at once (a promise only if it
// returns one).
function fastDispatch(instance, req, res, store) {
  if (instance.helpers && req.headers['content-type'] !== undefined) return dispatch(instance, req, res, store);
  if (instance.helpers) addHelpers(req, res, undefined);
  return instance.dispatch(req, res, store);
}

async function dispatch(instance, req, res, store, held) {
  if (instance.helpers) {
    let body;
    if (req.headers['content-type'] !== undefined) {
      held ??= holdBody(req);
      body = await held.whole();
    }
    addHelpers(req, res, body);
  }
  held?.release();
  await instance.dispatch(req, res, store);
}

// req.body's "Invalid JSON" is the client's error: 400 with the message.
function answerApiError(err, res) {
  if (!(err instanceof ApiError)) return false;
  if (!res.headersSent) {
    res.writeHead(err.statusCode, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(err.message);
  }
  return true;
}

runLauncher({
  load: loadFunction,
  dispatch,
  fastDispatch,
  errorCode: () => 'FUNCTION_INVOCATION_FAILED',
  clientError: answerApiError,
  // Source maps on, as `shouldAddSourcemapSupport` asks: enabling them costs
  // ~0.25 ms the first time (the server turns them off again).
  warmup: [
    {
      body: { dir: WARM_DIR, config: { handler: 'listener.js', shouldAddHelpers: true, shouldAddSourcemapSupport: true } },
      requests: LISTENER_WARMUP,
    },
    { body: { dir: WARM_DIR, config: { handler: 'methods.mjs' } }, requests: WEB_WARMUP },
  ],
});
