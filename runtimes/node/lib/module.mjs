// Loading a function's module: CommonJS with require() (createRequire), which
// costs well under a millisecond, instead of import(), whose ESM loader
// spends several milliseconds on a CommonJS file (cjs-module-lexer, the
// translator, the loader's bookkeeping); ES modules with import(). What the
// caller gets is shaped like import()'s namespace either way.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const requireHere = createRequire(import.meta.url);

// The "type" of the nearest package.json above `file`, as Node looks it up
// (the search stops at a node_modules folder); undefined when there is none
// and null when it cannot be read (the caller then leaves the decision to
// Node).
function packageType(file) {
  let dir = path.dirname(file);
  for (;;) {
    if (path.basename(dir) === 'node_modules') return undefined;
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        const type = JSON.parse(fs.readFileSync(candidate, 'utf8')).type;
        return typeof type === 'string' ? type : undefined;
      } catch {
        return null;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

// Whether Node treats `file` as CommonJS: `.cjs`, or `.js` whose nearest
// package.json does not say "type": "module". (A `.js` with ES module syntax
// and no "type" is ES after all: require() then either loads it as ESM itself
// or fails in a way loadModule() recognises.)
export function isCommonJs(file) {
  const ext = path.extname(file);
  if (ext === '.cjs') return true;
  if (ext !== '.js') return false;
  const type = packageType(file);
  return type === undefined || type === 'commonjs';
}

// Syntax that only an ES module may contain, as V8 words it when CommonJS
// compilation meets it.
const ESM_SYNTAX = [
  'Cannot use import statement outside a module',
  "Unexpected token 'export'",
  "Cannot use 'import.meta' outside a module",
  'await is only valid in async functions and the top level bodies of modules',
];

// Whether require(file) failed because `file` itself (not something it
// required after it started running) is an ES module require() cannot load:
// then nothing of it has run and import() may load it.
function isEsmRefusal(err, file) {
  if (err === null || typeof err !== 'object') return false;
  const message = typeof err.message === 'string' ? err.message : '';
  if (err.code === 'ERR_REQUIRE_ESM') return message.includes(`ES Module ${file} `);
  if (err.code === 'ERR_REQUIRE_ASYNC_MODULE') {
    // Newer messages name the module required; older ones nothing.
    return !message.includes('Requiring ') || message.includes(`Requiring ${file}`);
  }
  if (err instanceof SyntaxError) {
    const where = typeof err.stack === 'string' ? err.stack.slice(0, err.stack.indexOf('\n')) : '';
    return where.startsWith(`${file}:`) && ESM_SYNTAX.some((text) => message.includes(text));
  }
  return false;
}

// What import() gives for a CommonJS module: `default` is module.exports, and
// its own enumerable properties are the named exports (plus `__esModule`,
// which transpilers define non-enumerable and Node's export detection sees).
function namespaceOf(exported) {
  const namespace = Object.create(null);
  if (exported !== null && (typeof exported === 'object' || typeof exported === 'function')) {
    for (const key of Object.keys(exported)) {
      if (key !== 'default') namespace[key] = exported[key];
    }
    if (Object.hasOwn(exported, '__esModule')) namespace.__esModule = exported.__esModule;
  }
  namespace.default = exported;
  return namespace;
}

function isNamespace(value) {
  return value !== null && typeof value === 'object' && value[Symbol.toStringTag] === 'Module';
}

// Loads `file` (an absolute path) as Node would load it with import(), and
// resolves with its namespace (or the equivalent object for CommonJS).
export async function loadModule(file) {
  if (isCommonJs(file)) {
    let exported;
    try {
      exported = requireHere(file);
    } catch (err) {
      if (!isEsmRefusal(err, file)) throw err;
      return import(pathToFileURL(file).href);
    }
    // Node ≥ 20.19 / 22.12 require()s an ES module without top-level await
    // itself and returns its namespace.
    return isNamespace(exported) ? exported : namespaceOf(exported);
  }
  return import(pathToFileURL(file).href);
}
