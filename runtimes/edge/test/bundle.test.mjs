// bundle.mjs, the command `nimbus deploy` runs for each edge function: its
// decision, its one-line JSON answer, its output module and its errors.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { FIXTURES, NO_ESBUILD, copyFunction, runBundler, syntheticDir } from '../testing/harness.mjs';

describe('bundle.mjs', { skip: NO_ESBUILD }, () => {
  let work;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nimbus-edge-bundle-'));
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
  });
  const copies = [];
  after(() => {
    for (const { root } of copies) fs.rmSync(root, { recursive: true, force: true });
  });
  const copyOf = (name) => {
    const copy = copyFunction(syntheticDir(name));
    copies.push(copy);
    return copy.dir;
  };
  const out = (name) => path.join(work, name, 'edge-bundle.mjs');

  it('without two arguments: usage on stderr, exit 2', async () => {
    const run = await runBundler(syntheticDir('cjs-default'), undefined);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /usage: node bundle\.mjs <funcDir> <outFile>/);
  });

  it('a directory that is not an edge function: exit 1 naming the config', async () => {
    const missing = await runBundler(path.join(work, 'nothing-here'), out('nothing'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nothing-here\/\.vc-config\.json/);
    const dir = path.join(work, 'node-func');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '.vc-config.json'), '{"runtime":"nodejs20.x","handler":"index.js"}');
    const node = await runBundler(dir, out('node-func'));
    assert.equal(node.code, 1);
    assert.match(node.stderr, /"runtime" is "nodejs20\.x", not "edge"/);
  });

  it('a self-contained ES module (edge built-ins only) is left alone', async () => {
    const run = await runBundler(syntheticDir('self-contained'), out('self-contained'));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '{"bundled":false,"reason":"entrypoint is a self-contained ES module"}\n');
    assert.equal(fs.existsSync(out('self-contained')), false);
  });

  it('nitro-vercel-edge (minified ESM importing node:events, node:buffer) is left alone', { skip: !fs.existsSync(path.join(FIXTURES, 'nitro-vercel-edge')) && 'fixture missing' }, async () => {
    const run = await runBundler(path.join(FIXTURES, 'nitro-vercel-edge/output/functions/__fallback.func'), out('nitro'));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.result, { bundled: false, reason: 'entrypoint is a self-contained ES module' });
  });

  it('CommonJS: bundled into one ES module whose default export is the handler', async () => {
    const file = out('cjs-default');
    const run = await runBundler(syntheticDir('cjs-default'), file);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.split('\n').length, 2, 'exactly one line');
    assert.deepEqual(run.result, { bundled: true, bytes: fs.statSync(file).size, reason: 'entrypoint is CommonJS' });
    const source = fs.readFileSync(file, 'utf8');
    // require("node:events") became an ES import, not a require() that would throw.
    assert.match(source, /^import \w+ from "node:events";$/m);
    const module = await import(pathToFileURL(file).href);
    assert.equal(typeof module.default, 'function');
    const response = await module.default(new Request('https://example.test/api/edge'));
    assert.deepEqual(await response.json(), { shape: 'cjs-default', path: '/api/edge', emitter: 'function' });
  });

  it('CommonJS module.exports = { GET }: named method exports', async () => {
    const file = out('cjs-methods');
    const run = await runBundler(syntheticDir('cjs-methods'), file);
    assert.equal(run.code, 0, run.stderr);
    const module = await import(pathToFileURL(file).href);
    assert.equal(typeof module.GET, 'function');
    assert.equal(await (await module.GET(new Request('https://example.test/x'))).text(), 'cjs GET /x');
  });

  it('ESM importing a package and a relative file: bundled with the edge conditions', async () => {
    const dir = copyOf('esm-deps');
    const file = path.join(dir, '.nimbus', 'edge-bundle.mjs');
    const run = await runBundler(dir, file);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.result.bundled, true);
    assert.equal(run.result.reason, 'entrypoint imports "greeting", "./lib/suffix.mjs"');
    const source = fs.readFileSync(file, 'utf8');
    assert.ok(source.includes('edge-light build'));
    assert.ok(!source.includes('node build'));
    assert.match(source, /^import \{ Buffer \} from "node:buffer";$/m);
  });

  it('a bundling error: exit 1, stderr names the function, the entrypoint and file:line of each error', async () => {
    const dir = syntheticDir('bundle-error');
    const run = await runBundler(dir, out('bundle-error'));
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.ok(run.stderr.includes(`edge function ${dir} (entrypoint index.mjs)`), run.stderr);
    assert.match(run.stderr, /index\.mjs:3:\d+: Could not resolve "node:fs"\n\s+note: the edge runtime provides only these Node built-ins: async_hooks, events, buffer, assert, util/);
    assert.match(run.stderr, /index\.mjs:4:\d+: Could not resolve "nimbus-package-that-does-not-exist"/);
    assert.equal(fs.existsSync(out('bundle-error')), false);
  });

  it('a syntax error in the entrypoint: exit 1 with file:line', async () => {
    const dir = path.join(work, 'syntax.func');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '.vc-config.json'), '{"runtime":"edge","entrypoint":"index.js"}');
    fs.writeFileSync(path.join(dir, 'index.js'), 'export default function (request) {\n  return new Response(;\n}\n');
    const run = await runBundler(dir, out('syntax'));
    assert.equal(run.code, 1);
    assert.ok(run.stderr.includes(`cannot parse edge function ${dir} (entrypoint index.js)`), run.stderr);
    assert.match(run.stderr, /index\.js:2:\d+: /);
  });
});
