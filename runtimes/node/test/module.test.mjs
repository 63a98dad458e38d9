// lib/module.mjs: CommonJS handlers are loaded with require() and come back
// shaped like import()'s namespace; ES modules still load (with import(), or
// require() falling back to it) and are evaluated once.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isCommonJs, loadModule } from '../lib/module.mjs';

const require = createRequire(import.meta.url);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nimbus-module-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let seq = 0;
// Writes `files` ({ relative path: text }) into a fresh directory; returns it.
function write(files) {
  const dir = path.join(root, `case-${++seq}`);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

// Each module counts its evaluations under its own key.
const counted = (key, body) => `globalThis.__nimbusEvaluated ??= {};\nglobalThis.__nimbusEvaluated[${JSON.stringify(key)}] = (globalThis.__nimbusEvaluated[${JSON.stringify(key)}] ?? 0) + 1;\n${body}\n`;
const evaluations = (key) => globalThis.__nimbusEvaluated?.[key] ?? 0;

describe('CommonJS: the same shape as import() gives', () => {
  const cases = {
    'module.exports = function': 'module.exports = (req, res) => res.end("x");',
    'module.exports = function with properties': 'module.exports = (req, res) => res.end("x"); module.exports.config = { a: 1 };',
    'exports.GET and exports.POST': 'exports.GET = () => new Response("g"); exports.POST = () => new Response("p");',
    'module.exports = { GET, DELETE }': 'const GET = () => 1; const DELETE = () => 2; module.exports = { GET, DELETE };',
    'exports.default with __esModule': 'Object.defineProperty(exports, "__esModule", { value: true }); exports.default = (request) => new Response("d");',
    'module.exports = object with default and fetch': 'module.exports = { default: { fetch() {} }, other: 1 };',
    'module.exports = {}': '',
  };
  for (const [name, body] of Object.entries(cases)) {
    it(name, async () => {
      const file = path.join(write({ 'index.js': body }), 'index.js');
      assert.equal(isCommonJs(file), true);
      const loaded = await loadModule(file);
      assert.ok(require.cache[file], 'loaded with require()');
      // import() of a CommonJS file goes through the same require cache, so
      // both see the very same module.exports.
      const imported = await import(pathToFileURL(file).href);
      assert.equal(loaded.default, imported.default);
      for (const key of Object.keys(imported)) assert.equal(loaded[key], imported[key], key);
    });
  }
});

describe('which loader a file gets', () => {
  it('.cjs in a "type": "module" package: require()', async () => {
    const dir = write({ 'package.json': '{"type":"module"}', 'api/server.cjs': counted('cjs-in-esm', 'module.exports = () => 1;') });
    const file = path.join(dir, 'api', 'server.cjs');
    assert.equal(isCommonJs(file), true);
    const loaded = await loadModule(file);
    assert.equal(typeof loaded.default, 'function');
    assert.ok(require.cache[file]);
    assert.equal(evaluations('cjs-in-esm'), 1);
  });

  it('.js in a "type": "module" package and .mjs: import()', async () => {
    const dir = write({
      'package.json': '{"type":"module"}',
      'index.js': counted('esm-js', 'export const GET = () => 1;'),
      'other.mjs': counted('esm-mjs', 'export default 2;'),
    });
    for (const [name, key] of [['index.js', 'esm-js'], ['other.mjs', 'esm-mjs']]) {
      const file = path.join(dir, name);
      assert.equal(isCommonJs(file), false);
      const loaded = await loadModule(file);
      assert.equal(loaded[Symbol.toStringTag], 'Module');
      assert.equal(require.cache[file], undefined);
      assert.equal(evaluations(key), 1);
    }
  });

  it('the nearest package.json decides; the search stops at node_modules', () => {
    const dir = write({
      'package.json': '{"type":"module"}',
      'sub/package.json': '{"name":"no-type"}',
      'sub/a.js': '',
      'node_modules/pkg/b.js': '',
      'c.js': '',
    });
    assert.equal(isCommonJs(path.join(dir, 'sub', 'a.js')), true);
    assert.equal(isCommonJs(path.join(dir, 'node_modules', 'pkg', 'b.js')), true);
    assert.equal(isCommonJs(path.join(dir, 'c.js')), false);
  });

  it('a .js with ES module syntax and no "type" loads as ESM, evaluated once', async () => {
    const file = path.join(write({ 'index.js': counted('typeless-esm', 'export default function handler() { return 1; }') }), 'index.js');
    const loaded = await loadModule(file);
    assert.equal(typeof loaded.default, 'function');
    assert.equal(loaded.default(), 1);
    assert.equal(evaluations('typeless-esm'), 1);
  });

  it('a .js with top-level await and no "type" falls back to import(), evaluated once', async () => {
    const body = 'await new Promise((resolve) => setTimeout(resolve, 5));\nexport const GET = () => "tla";';
    const file = path.join(write({ 'index.js': counted('typeless-tla', body) }), 'index.js');
    const loaded = await loadModule(file);
    assert.equal(loaded.GET(), 'tla');
    assert.equal(evaluations('typeless-tla'), 1);
  });
});

describe('errors', () => {
  it('an error thrown by the module is the error, the module evaluated once', async () => {
    const file = path.join(write({ 'index.js': counted('throws', 'throw new Error("boom in cjs");') }), 'index.js');
    await assert.rejects(loadModule(file), /boom in cjs/);
    assert.equal(evaluations('throws'), 1);
  });

  it("a require() of an ES module with top-level await inside the handler is not retried with import()", async () => {
    const dir = write({
      'index.js': counted('requires-tla', 'module.exports = require("./tla.mjs");'),
      'tla.mjs': 'await 0;\nexport default 1;',
    });
    await assert.rejects(loadModule(path.join(dir, 'index.js')), (err) => /ERR_REQUIRE_ASYNC_MODULE|ERR_REQUIRE_ESM/.test(err.code));
    assert.equal(evaluations('requires-tla'), 1);
  });

  it('a syntax error that is not ES module syntax is thrown as it is', async () => {
    const file = path.join(write({ 'index.js': 'module.exports = (;' }), 'index.js');
    await assert.rejects(loadModule(file), SyntaxError);
  });

  it('a missing dependency names the package', async () => {
    const file = path.join(write({ 'index.js': 'require("nimbus-package-that-does-not-exist");' }), 'index.js');
    await assert.rejects(loadModule(file), /Cannot find module 'nimbus-package-that-does-not-exist'/);
  });
});
