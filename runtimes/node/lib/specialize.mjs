// Specialization: environment, loading the handler module, detecting its
// export shape (spec 3.3.2) and turning it into a dispatcher.

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { awsDispatcher } from './aws.mjs';
import { exportChain, hasMethodExports, isObjectLike, methodsHandler } from './exports.mjs';
import { loadModule } from './module.mjs';
import { callWebHandler, sendResponse } from './web.mjs';

const LISTEN_WAIT_MS = 1000;
const DEFAULT_MAX_DURATION_S = 300;

// Project env, then the function's own `environment`, then what the platform
// owns (spec 3.11, and the launcher options of spec 3.2 as env vars).
function applyEnvironment({ env, config, deploymentId, region }) {
  const assign = (vars) => {
    for (const [key, value] of Object.entries(vars ?? {})) {
      if (value === null || value === undefined) delete process.env[key];
      else process.env[key] = String(value);
    }
  };
  assign(env);
  assign(config.environment);
  process.env.VERCEL = '1';
  if (region) process.env.VERCEL_REGION = String(region);
  if (deploymentId) process.env.VERCEL_DEPLOYMENT_ID = String(deploymentId);
  if (config.memory) process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE = String(config.memory);
  if (config.awsLambdaHandler) process.env.AWS_LAMBDA_HANDLER = config.awsLambdaHandler;
  if (config.shouldAddHelpers) process.env.VERCEL_SHOULD_ADD_HELPERS = '1';
  if (config.useWebApi) process.env.VERCEL_USE_WEB_API = '1';
  if (config.shouldAddSourcemapSupport) process.env.VERCEL_SOURCE_MAP = '1';
  if (config.shouldDisableAutomaticFetchInstrumentation) {
    process.env.VERCEL_TRACING_DISABLE_AUTOMATIC_FETCH_INSTRUMENTATION = '1';
  }
  process.env.NODE_ENV ??= 'production';
}

// Captures http(s) servers that user code starts listening while the
// interceptor is installed: the port is ignored, the server listens on a
// private address (an abstract Unix socket on Linux, so `address()` and the
// listen callback behave) and the launcher hands it requests directly.
class ListenInterceptor {
  #servers = [];
  #waiters = [];
  #original = net.Server.prototype.listen;
  #seq = 0;

  install() {
    const self = this;
    const original = this.#original;
    net.Server.prototype.listen = function interceptedListen(...args) {
      if (!(this instanceof http.Server || this instanceof https.Server)) return original.apply(this, args);
      self.#servers.push(this);
      for (const wake of self.#waiters.splice(0)) wake();
      const callback = typeof args.at(-1) === 'function' ? args.at(-1) : undefined;
      return original.call(this, self.#privateAddress(), callback);
    };
  }

  uninstall() {
    net.Server.prototype.listen = this.#original;
  }

  #privateAddress() {
    const name = `nimbus-${process.pid}-${++this.#seq}`;
    return process.platform === 'linux' ? `\0${name}` : path.join(os.tmpdir(), `${name}.sock`);
  }

  get count() {
    return this.#servers.length;
  }

  // The index-th captured server, waiting up to `ms` for it.
  async server(index, ms) {
    const deadline = Date.now() + ms;
    while (this.#servers.length <= index) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.#servers[index];
  }
}

function webDispatcher(handle) {
  return async (req, res, store) => {
    await sendResponse(req, res, await callWebHandler(handle, req, res, store));
  };
}

function listenerDispatcher(listener, thisArg) {
  return (req, res) => listener.call(thisArg, req, res);
}

function serverDispatcher(server) {
  return (req, res) => {
    server.emit('request', req, res);
  };
}

async function detectShape(namespace, config, interceptor, file) {
  const chain = exportChain(namespace);
  for (const level of chain) {
    if (hasMethodExports(level)) {
      return { shape: 'web-methods', dispatch: webDispatcher(methodsHandler(level)) };
    }
  }
  for (const level of chain.slice(1)) {
    if (typeof level.fetch === 'function') {
      return { shape: 'fetch-object', dispatch: webDispatcher((request, context) => level.fetch(request, context)) };
    }
  }
  const value = chain.length > 1 ? chain.at(-1) : undefined;
  if (typeof value === 'function') {
    if (config.useWebApi || value.length === 1) {
      return { shape: 'web-function', dispatch: webDispatcher(value) };
    }
    const helpers = Boolean(config.shouldAddHelpers) && typeof value.listen !== 'function';
    return { shape: 'node-listener', helpers, dispatch: listenerDispatcher(value) };
  }
  if (isObjectLike(value) && typeof value.listen === 'function') {
    if (value instanceof http.Server || value instanceof https.Server) {
      return { shape: 'server-object', dispatch: serverDispatcher(value) };
    }
    // An app object that creates its server in listen() (Koa, Fastify...).
    const index = interceptor.count;
    await value.listen();
    const server = await interceptor.server(index, LISTEN_WAIT_MS);
    if (server !== undefined) return { shape: 'server-object', dispatch: serverDispatcher(server) };
  }
  const server = await interceptor.server(0, LISTEN_WAIT_MS);
  if (server !== undefined) return { shape: 'listen-at-import', dispatch: serverDispatcher(server) };
  throw new Error(
    `Can't detect way to handle request: no exports found in module ${file}. ` +
      'Did you forget to export a function (Web handler or (req, res) listener), an object with fetch(), ' +
      'per-method GET/POST/... functions, or a server?',
  );
}

async function awsShape(namespace, config, dir, functionName) {
  const spec = config.awsLambdaHandler;
  const dot = spec.lastIndexOf('.');
  const exportName = dot === -1 ? 'handler' : spec.slice(dot + 1);
  const handler = exportChain(namespace).map((level) => level[exportName]).find((v) => typeof v === 'function');
  if (handler === undefined) {
    throw new Error(`awsLambdaHandler "${spec}": ${path.resolve(dir, config.handler)} exports no function "${exportName}"`);
  }
  const maxDurationSeconds = typeof config.maxDuration === 'number' ? config.maxDuration : DEFAULT_MAX_DURATION_S;
  return { shape: 'aws-lambda', dispatch: awsDispatcher(handler, { functionName, maxDurationSeconds }) };
}

function handlerFile(dir, config) {
  if (typeof config.handler === 'string' && config.handler !== '') return path.resolve(dir, config.handler);
  if (typeof config.awsLambdaHandler === 'string' && config.awsLambdaHandler.includes('.')) {
    return path.resolve(dir, `${config.awsLambdaHandler.slice(0, config.awsLambdaHandler.lastIndexOf('.'))}.js`);
  }
  throw new Error('.vc-config.json has no "handler"');
}

// Loads the function described by a specialize request. Resolves with
// { shape, helpers?, dispatch(req, res, store, body?) }; rejects with the
// load or detection error.
export async function loadFunction(request) {
  const { config, functionName = '' } = request;
  const dir = path.resolve(request.dir);
  applyEnvironment(request);
  process.chdir(dir);
  if (config.shouldAddSourcemapSupport) process.setSourceMapsEnabled(true);
  const file = handlerFile(dir, config);
  const interceptor = new ListenInterceptor();
  interceptor.install();
  try {
    const namespace = await loadModule(file);
    if (typeof config.awsLambdaHandler === 'string' && config.awsLambdaHandler !== '') {
      config.handler ??= path.relative(dir, file);
      return await awsShape(namespace, config, dir, functionName);
    }
    return await detectShape(namespace, config, interceptor, file);
  } finally {
    interceptor.uninstall();
  }
}

