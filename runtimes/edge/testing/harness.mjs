// Test harness for the edge launcher and bundler: the Node launcher's harness
// (../../node/testing/harness.mjs) pointed at launcher.mjs here, plus helpers
// to copy and bundle functions. Kept outside test/ (as are the synthetic
// functions) because Node 20's `node --test <dir>` runs every .js/.mjs/.cjs
// file under a directory named `test` as a test file.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFunction, useLauncher, withDeadline } from '../../node/testing/harness.mjs';

// nodeSyntheticDir: the Node launcher's synthetic functions, some of which the
// edge tests run too (with an edge config).
export {
  FIXTURES,
  nextChunk,
  syntheticDir as nodeSyntheticDir,
  platformHeaders,
  readConfig,
  readRest,
  waitFor,
  withDeadline,
} from '../../node/testing/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EDGE_DIR = path.resolve(here, '..');
export const LAUNCHER = path.join(EDGE_DIR, 'launcher.mjs');
export const BUNDLER = path.join(EDGE_DIR, 'bundle.mjs');
export const SYNTHETIC = path.join(here, 'functions');

const BUNDLE_TIMEOUT_MS = 60000;

// Set when esbuild is not installed: tests that bundle skip with this message.
export const NO_ESBUILD = fs.existsSync(path.join(EDGE_DIR, 'node_modules', 'esbuild', 'package.json'))
  ? false
  : `esbuild is not installed (run \`npm ci\` in ${EDGE_DIR})`;

// Starts an edge launcher and specializes it with the function in `funcDir`
// (config from its .vc-config.json unless given; `extra` adds to the body).
export function startEdgeFunction(funcDir, options = {}) {
  return startFunction(funcDir, { ...options, launcher: LAUNCHER });
}

export function syntheticDir(name) {
  return path.join(SYNTHETIC, `${name}.func`);
}

// before/after hooks for an edge launcher specialized with the function in
// `dir` (a function: evaluated in `before`); returns a getter for it.
export function useEdgeFunction(dir, options = {}) {
  return useLauncher(dir, { ...options, launcher: LAUNCHER });
}

// Copies a function directory into a fresh temporary directory (fixtures are
// read-only, and the bundle goes inside the copy). A `_node_modules` folder
// becomes `node_modules`: the repository ignores node_modules folders, so
// synthetic functions keep their packages under the other name.
export function copyFunction(funcDir) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nimbus-edge-func-'));
  const copy = path.join(root, path.basename(funcDir));
  fs.cpSync(funcDir, copy, { recursive: true, verbatimSymlinks: true });
  // The fixtures' directories are read-only; the copy must take the bundle
  // and be removable.
  fs.chmodSync(copy, 0o755);
  for (const entry of fs.readdirSync(copy, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) fs.chmodSync(path.join(entry.parentPath ?? entry.path, entry.name), 0o755);
  }
  const vendored = path.join(copy, '_node_modules');
  if (fs.existsSync(vendored)) fs.renameSync(vendored, path.join(copy, 'node_modules'));
  return { root, dir: copy };
}

// Runs bundle.mjs (an undefined argument is left out); resolves with
// { code, stdout, stderr, result (the parsed stdout line when it exits 0) }.
export function runBundler(funcDir, outFile) {
  const args = [BUNDLER, funcDir, outFile].filter((arg) => arg !== undefined);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text));
  const done = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  return withDeadline(done, BUNDLE_TIMEOUT_MS, `bundle.mjs ${funcDir}`)
    .catch((err) => {
      child.kill('SIGKILL');
      throw err;
    })
    .then((code) => {
      let result;
      if (code === 0) result = JSON.parse(stdout);
      return { code, stdout, stderr, result };
    });
}

// Copies `funcDir` to a temporary directory and bundles it into the copy's
// .nimbus/edge-bundle.mjs, where the launcher looks for it. Resolves with
// { root, dir, result }; the caller removes `root`.
export async function bundledCopy(funcDir) {
  const copy = copyFunction(funcDir);
  const run = await runBundler(copy.dir, path.join(copy.dir, '.nimbus', 'edge-bundle.mjs'));
  if (run.code !== 0) throw new Error(`bundle.mjs failed (exit ${run.code}): ${run.stderr}`);
  return { ...copy, result: run.result };
}

// before/after hooks for a launcher specialized with a bundled temporary copy
// of `funcDir`; returns a getter for { launcher, dir, result }.
export function useBundledFunction(funcDir, options = {}) {
  let state = {};
  before(async () => {
    const copy = await bundledCopy(funcDir);
    state = { ...copy, launcher: undefined };
    state.launcher = await startEdgeFunction(copy.dir, options);
  });
  after(async () => {
    await state.launcher?.stop();
    if (state.root) fs.rmSync(state.root, { recursive: true, force: true });
  });
  return () => state;
}
