// The edge functions of the real Build Output fixtures (../shared/fixtures):
// each is run through bundle.mjs the way `nimbus deploy` does (into a
// temporary copy), specialized in its own launcher and sent the EXPECT.md rows
// it serves, with the path and query the function sees after routing. The
// ones Node can load as they are also run unbundled.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NITRO_ROWS, itServesRows } from '../../node/testing/suites.mjs';
import { FIXTURES, NO_ESBUILD, useBundledFunction, useEdgeFunction } from '../testing/harness.mjs';

const NEXT = { 'x-middleware-next': '1' };

// rows: [method, path the function sees, extra headers, body, status, body contains[], response headers]
// bundled: what bundle.mjs must decide. unbundled: also served straight from the entrypoint.
const FUNCTIONS = [
  {
    name: 'vercel-functions api/edge.func',
    dir: 'vercel-functions/output/functions/api/edge.func',
    bundled: true,
    unbundled: true,
    rows: [['GET', '/api/edge', {}, undefined, 200, ['"kind":"edge"', '"path":"/api/edge"', '"edgeRuntime":"string"']]],
  },
  {
    name: 'vercel-functions api/hono-edge.func',
    dir: 'vercel-functions/output/functions/api/hono-edge.func',
    bundled: true,
    unbundled: false, // require("hono") of ESM-only files: must be bundled
    rows: [
      // Rewritten to /api/hono-edge?path=$1; the function sees the original path.
      ['GET', '/api/hono-edge?path=', {}, undefined, 200, ['"kind":"edge-hono"']],
      ['GET', '/api/hono-edge/bob?path=bob', {}, undefined, 200, ['"kind":"edge-hono"', '"name":"bob"']],
    ],
  },
  {
    name: 'vercel-functions middleware.func (middleware)',
    dir: 'vercel-functions/output/functions/middleware.func',
    middleware: true,
    bundled: true,
    unbundled: true,
    rows: [
      ['GET', '/mw/blocked', {}, undefined, 403, ['blocked by middleware']],
      ['GET', '/mw/hello', {}, undefined, 200, ['"kind":"middleware"']],
      // Nothing returned: the worker continues routing (and ends in a 404).
      ['GET', '/mw/other', {}, undefined, 200, [], NEXT],
    ],
  },
  {
    name: 'nitro-vercel-edge __fallback.func',
    dir: 'nitro-vercel-edge/output/functions/__fallback.func',
    bundled: false,
    unbundled: true,
    rows: [
      ...NITRO_ROWS,
      // Rewritten to /__fallback?__isr_route=/isr: original path, merged query.
      ['GET', '/isr?__isr_route=%2Fisr', {}, undefined, 200, ['Nitro ISR page']],
    ],
  },
  {
    name: 'sveltekit ![-]/1.func (edge.func)',
    dir: 'sveltekit/output/functions/![-]/1.func',
    bundled: false,
    unbundled: true,
    rows: [['GET', '/edge', {}, undefined, 200, ['rendered on edge']]],
  },
];

function sendsRows(fn, launcher) {
  it('specializes', () => {
    const { status, json } = launcher().specializeResult;
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.ok, true);
  });
  itServesRows(launcher, fn.rows);
}

for (const fn of FUNCTIONS) {
  const funcDir = path.join(FIXTURES, fn.dir);
  const present = fs.existsSync(path.join(funcDir, '.vc-config.json'));
  const options = fn.middleware ? { middleware: true } : {};
  describe(fn.name, { skip: present ? false : `fixture not found at ${funcDir}` }, () => {
    if (fn.unbundled) {
      describe('loaded from its entrypoint', () => {
        const launcher = useEdgeFunction(funcDir, options);
        sendsRows(fn, launcher);
      });
    }
    describe('after bundle.mjs', { skip: NO_ESBUILD }, () => {
      const state = useBundledFunction(funcDir, options);
      it(`bundle.mjs decides bundled: ${fn.bundled}`, () => {
        assert.equal(state().result.bundled, fn.bundled, JSON.stringify(state().result));
        assert.equal(fs.existsSync(path.join(state().dir, '.nimbus', 'edge-bundle.mjs')), fn.bundled);
        assert.equal(state().launcher.specializeResult.json.bundled, fn.bundled);
      });
      sendsRows(fn, () => state().launcher);
    });
  });
}
