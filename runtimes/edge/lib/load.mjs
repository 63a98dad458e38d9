// Specialization of an edge function (spec 3.5/3.6): its environment, loading
// its module (the deploy-time bundle if there is one) and finding its handler.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportChain, hasMethodExports, methodsHandler } from '../../node/lib/exports.mjs';
import { loadModule } from '../../node/lib/module.mjs';

// Where `nimbus deploy` puts the esbuild bundle of an unbundled edge function
// (bundle.mjs), relative to the function directory.
export const BUNDLE_PATH = path.join('.nimbus', 'edge-bundle.mjs');

// Variables the platform owns: always passed through from `env`, whatever
// `envVarsInUse` says.
function isPlatformVariable(name) {
  return name === 'NODE_ENV' || name.startsWith('VERCEL');
}

// Edge code sees only the function's variables, never the environment the
// stem cell was started with. `config.environment` (values the builder baked
// for this function) is always exposed; the project variables in `env` are
// limited to `config.envVarsInUse` when that is an array. Platform variables
// are set last. A null value in `env` or `environment` leaves the variable out.
function applyEnvironment({ env, config, deploymentId, region }) {
  for (const name of Object.keys(process.env)) delete process.env[name];
  const inUse = Array.isArray(config.envVarsInUse) ? new Set(config.envVarsInUse) : undefined;
  const assign = (vars, keep) => {
    for (const [name, value] of Object.entries(vars ?? {})) {
      if (!keep(name)) continue;
      if (value === null || value === undefined) delete process.env[name];
      else process.env[name] = String(value);
    }
  };
  assign(env, (name) => inUse === undefined || inUse.has(name) || isPlatformVariable(name));
  assign(config.environment, () => true);
  process.env.VERCEL = '1';
  if (region) process.env.VERCEL_REGION = String(region);
  if (deploymentId) process.env.VERCEL_DEPLOYMENT_ID = String(deploymentId);
  process.env.NODE_ENV ??= 'production';
}

// As Vercel's edge wrapper: a default function first (the innermost one the
// unwrapping reaches first), then a default object with fetch(), then named
// HTTP-method exports at any level.
function detectHandler(namespace, file) {
  const chain = exportChain(namespace);
  for (const level of chain.slice(1)) {
    if (typeof level === 'function') return { shape: 'web-function', handle: level };
    if (typeof level.fetch === 'function') {
      return { shape: 'fetch-object', handle: (request, context) => level.fetch(request, context) };
    }
  }
  const methods = chain.find(hasMethodExports);
  if (methods !== undefined) return { shape: 'web-methods', handle: methodsHandler(methods) };
  throw new Error(
    `No default or HTTP-method export found in ${file}: export a function (request, context) => Response, ` +
      'an object with fetch(), or GET/POST/... functions.',
  );
}

// Loads the edge function described by a specialize request. Resolves with
// { shape, bundled, middleware, handle(request, context) }; rejects with the
// load or detection error.
export async function loadEdgeFunction(request) {
  const { config } = request;
  const dir = path.resolve(request.dir);
  if (config.runtime !== 'edge') throw new Error(`not an edge function: .vc-config.json "runtime" is ${JSON.stringify(config.runtime)}`);
  if (typeof config.entrypoint !== 'string' || config.entrypoint === '') throw new Error('.vc-config.json has no "entrypoint"');
  applyEnvironment(request);
  const bundle = path.join(dir, BUNDLE_PATH);
  const bundled = fs.existsSync(bundle);
  const file = bundled ? bundle : path.resolve(dir, config.entrypoint);
  // The bundle is an ES module; an entrypoint is loaded as Node decides
  // (CommonJS with require(), the fast path).
  const namespace = bundled ? await import(pathToFileURL(file).href) : await loadModule(file);
  return { ...detectHandler(namespace, file), bundled, middleware: request.middleware === true };
}
