"use strict";

// An edge function transpiled to CommonJS as `vercel build` leaves it:
// `exports.default = handler` with `__esModule`, plus a require() of an
// edge built-in.
Object.defineProperty(exports, "__esModule", { value: true });
exports.config = void 0;
exports.default = handler;
const { EventEmitter } = require("node:events");
const config = exports.config = { runtime: 'edge' };
function handler(request) {
  return Response.json({
    shape: 'cjs-default',
    path: new URL(request.url).pathname,
    emitter: typeof EventEmitter,
  });
}
