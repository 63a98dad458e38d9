#!/usr/bin/env node
// Deploy-time bundler for edge functions. Contract: README.md in this directory.
//
//   node bundle.mjs <funcDir> <outFile>
//
// Decides whether the edge function in <funcDir> arrives unbundled (CommonJS,
// or importing packages or files) and if so bundles it with esbuild into one
// self-contained ES module at <outFile>, which `nimbus deploy` uploads as
// <func>/.nimbus/edge-bundle.mjs. Prints one JSON line:
//   {"bundled":true,"bytes":N,"reason":"..."}  or  {"bundled":false,"reason":"..."}

import fs from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';

// The Node built-ins Vercel's edge runtime provides (spec 3.5); everything
// else must be bundled in or is an error.
const EDGE_BUILTINS = ['async_hooks', 'events', 'buffer', 'assert', 'util'];
const BUILTIN_PATTERN = new RegExp(`^(node:)?(${EDGE_BUILTINS.join('|')})$`);
const EDGE_BUILTINS_NOTE = `the edge runtime provides only these Node built-ins: ${EDGE_BUILTINS.join(', ')}`;
const BUILTIN_NAMESPACE = 'nimbus-edge-builtin';
const HTTP_METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH'];
const REQUIRE_KINDS = new Set(['require-call', 'require-resolve']);

class UsageError extends Error {}

function readConfig(funcDir) {
  const file = path.join(funcDir, '.vc-config.json');
  let config;
  try {
    config = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${err.message}`);
  }
  if (config.runtime !== 'edge') throw new UsageError(`${file}: "runtime" is ${JSON.stringify(config.runtime)}, not "edge"`);
  if (typeof config.entrypoint !== 'string' || config.entrypoint === '') throw new UsageError(`${file}: no "entrypoint"`);
  return config;
}

// Parses the entry module alone (every import left external) and returns
// esbuild's view of it: { format: 'cjs' | 'esm' | undefined, imports: [{ path, kind }] }.
async function analyzeEntry(esbuild, funcDir, entryFile) {
  const result = await esbuild.build({
    entryPoints: [entryFile],
    absWorkingDir: funcDir,
    bundle: true,
    write: false,
    metafile: true,
    format: 'esm',
    platform: 'neutral',
    logLevel: 'silent',
    plugins: [
      {
        name: 'nimbus-imports-only',
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => (args.kind === 'entry-point' ? undefined : { path: args.path, external: true }));
        },
      },
    ],
  });
  const [input] = Object.values(result.metafile.inputs);
  return { format: input.format, imports: input.imports };
}

// Why the entry needs bundling, or undefined when it is a self-contained ES
// module (imports nothing but the edge built-ins).
function bundlingReason({ format, imports }) {
  if (format === 'cjs') return 'entrypoint is CommonJS';
  const required = imports.find((i) => REQUIRE_KINDS.has(i.kind));
  if (required !== undefined) return `entrypoint calls require(${JSON.stringify(required.path)})`;
  const foreign = imports.filter((i) => !BUILTIN_PATTERN.test(i.path)).map((i) => i.path);
  if (foreign.length > 0) return `entrypoint imports ${[...new Set(foreign)].map((p) => JSON.stringify(p)).join(', ')}`;
  return undefined;
}

// Turns `require("events")` in CommonJS code into an ES import of
// "node:events": esbuild would otherwise leave a `require` call that throws
// in an ES module. ES imports of the built-ins simply stay external.
const edgeBuiltins = {
  name: 'nimbus-edge-builtins',
  setup(build) {
    build.onResolve({ filter: BUILTIN_PATTERN }, (args) =>
      REQUIRE_KINDS.has(args.kind) ? { path: args.path, namespace: BUILTIN_NAMESPACE } : { path: args.path, external: true },
    );
    build.onLoad({ filter: /.*/, namespace: BUILTIN_NAMESPACE }, (args) => {
      const specifier = JSON.stringify(args.path.startsWith('node:') ? args.path : `node:${args.path}`);
      return { contents: `import builtin from ${specifier};\nmodule.exports = builtin;\n`, loader: 'js' };
    });
  },
};

// The bundle's entry for a CommonJS module: re-exported through esbuild's
// interop so that `exports.default = fn` (with `__esModule`) or
// `module.exports = fn` becomes the ES default export, and `exports.GET`...
// become named exports.
function commonJsEntry(entrypoint) {
  const specifier = JSON.stringify(`./${entrypoint}`);
  return [
    `import * as entry from ${specifier};`,
    'export default entry.default;',
    `export const { ${HTTP_METHODS.join(', ')} } = entry;`,
    '',
  ].join('\n');
}

async function bundle(esbuild, funcDir, config, format, outFile) {
  const options = {
    absWorkingDir: funcDir,
    bundle: true,
    write: false,
    outfile: outFile,
    format: 'esm',
    platform: 'neutral',
    mainFields: ['browser', 'module', 'main'],
    conditions: ['edge-light', 'worker', 'browser', 'import'],
    sourcemap: false,
    logLevel: 'silent',
    plugins: [edgeBuiltins],
  };
  if (format === 'cjs') {
    // No .mjs name: esbuild must honour `__esModule` when importing the module.
    options.stdin = { contents: commonJsEntry(config.entrypoint), resolveDir: funcDir, sourcefile: 'nimbus-edge-entry.js', loader: 'js' };
  } else {
    options.entryPoints = [path.resolve(funcDir, config.entrypoint)];
  }
  const result = await esbuild.build(options);
  const [output] = result.outputFiles;
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, output.contents);
  return output.contents.byteLength;
}

// esbuild's errors as `file:line:column: text`, one per line (paths relative
// to the function directory). esbuild's own notes are about its options, so
// they are left out; a Node built-in gets a note saying what the edge allows.
function formatEsbuildErrors(err) {
  if (!Array.isArray(err.errors)) return String(err.stack ?? err);
  return err.errors
    .map((e) => {
      const where = e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : '';
      const unresolved = /^Could not resolve "([^"]+)"/.exec(e.text)?.[1];
      const note = unresolved !== undefined && isBuiltin(unresolved) ? `\n    note: ${EDGE_BUILTINS_NOTE}` : '';
      return `  ${where}${e.text}${note}`;
    })
    .join('\n');
}

async function loadEsbuild() {
  try {
    return await import('esbuild');
  } catch (err) {
    if (err.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    process.stderr.write(`edge bundle: esbuild is not installed: run \`npm ci\` in ${import.meta.dirname}\n`);
    process.exit(1);
  }
}

async function main() {
  const [funcArg, outArg, ...extra] = process.argv.slice(2);
  if (funcArg === undefined || outArg === undefined || extra.length > 0) {
    process.stderr.write('usage: node bundle.mjs <funcDir> <outFile>\n');
    process.exit(2);
  }
  const funcDir = path.resolve(funcArg);
  const outFile = path.resolve(outArg);
  let config;
  try {
    config = readConfig(funcDir);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`edge bundle: ${err.message}\n`);
    process.exit(1);
  }
  const esbuild = await loadEsbuild();
  const where = `edge function ${funcDir} (entrypoint ${config.entrypoint})`;
  let analysis;
  try {
    analysis = await analyzeEntry(esbuild, funcDir, path.resolve(funcDir, config.entrypoint));
  } catch (err) {
    process.stderr.write(`edge bundle: cannot parse ${where}:\n${formatEsbuildErrors(err)}\n`);
    process.exit(1);
  }
  const reason = bundlingReason(analysis);
  if (reason === undefined) {
    process.stdout.write(`${JSON.stringify({ bundled: false, reason: 'entrypoint is a self-contained ES module' })}\n`);
    return;
  }
  let bytes;
  try {
    bytes = await bundle(esbuild, funcDir, config, analysis.format, outFile);
  } catch (err) {
    process.stderr.write(`edge bundle: bundling ${where} failed (${reason}):\n${formatEsbuildErrors(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ bundled: true, bytes, reason })}\n`);
}

main().catch((err) => {
  process.stderr.write(`edge bundle failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
