// The Node functions of the real Build Output fixtures (/work/shared/fixtures),
// each specialized in its own launcher and sent the EXPECT.md rows it serves,
// with the path and query the platform hands the function after routing.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, startFunction } from '../testing/harness.mjs';
import { NITRO_ROWS, itServesRows } from '../testing/suites.mjs';

const JSON_BODY = { 'content-type': 'application/json' };

// [method, path the function sees, extra headers, body, status, body contains[], response headers]
const FUNCTIONS = [
  {
    name: 'nitro-vercel __fallback.func',
    dir: 'nitro-vercel/output/functions/__fallback.func',
    shape: 'node-listener',
    rows: [
      ...NITRO_ROWS,
      // isr-isr.func is a symlink to __fallback.func; as a prerender function it
      // gets the routed path, and nitro restores /isr from the query or header.
      ['GET', '/isr-isr?__isr_route=%2Fisr', {}, undefined, 200, ['Nitro ISR page']],
      ['GET', '/isr-isr', { 'x-now-route-matches': '__isr_route=%2Fisr' }, undefined, 200, ['Nitro ISR page']],
    ],
  },
  {
    name: 'hono index.func',
    dir: 'hono/output/functions/index.func',
    shape: 'fetch-object',
    rows: [
      ['GET', '/', {}, undefined, 200, ['Hono fixture home']],
      ['GET', '/api/hello?name=bob', {}, undefined, 200, ['"name":"bob"']],
      ['POST', '/api/echo', JSON_BODY, '{"a":1}', 201, ['"echo":{"a":1}']],
      ['GET', '/users/7', {}, undefined, 200, ['"id":"7"']],
      ['GET', '/headers', { 'user-agent': 'probe/1' }, undefined, 200, ['"ua":"probe/1"', '"xff":"203.0.113.9"']],
      ['GET', '/redirect', {}, undefined, 302, [], { location: '/api/hello' }],
      ['GET', '/nope', {}, undefined, 404, ['404 Not Found']],
    ],
  },
  {
    name: 'sveltekit ![-]/0.func (index, ssr, api/hello)',
    dir: 'sveltekit/output/functions/![-]/0.func',
    shape: 'fetch-object',
    rows: [
      ['GET', '/', {}, undefined, 200, ['SvelteKit fixture home']],
      ['GET', '/ssr?q=abc', {}, undefined, 200, ['SSR load ran', 'q=abc']],
      ['GET', '/ssr/__data.json?q=z', {}, undefined, 200, ['"type":"data"'], { 'content-type': /application\/json/ }],
      ['GET', '/api/hello?name=bob', {}, undefined, 200, ['"name":"bob"']],
      ['POST', '/api/hello', JSON_BODY, '{"a":1}', 201, ['"echo":{"a":1}']],
    ],
  },
  {
    name: 'sveltekit ![-]/2.func (isr)',
    dir: 'sveltekit/output/functions/![-]/2.func',
    shape: 'fetch-object',
    rows: [['GET', '/isr?__pathname=/isr', {}, undefined, 200, ['generated at']]],
  },
  {
    name: 'sveltekit ![-]/catchall.func',
    dir: 'sveltekit/output/functions/![-]/catchall.func',
    shape: 'fetch-object',
    rows: [['GET', '/nope', {}, undefined, 404, ['Not Found']]],
  },
  {
    name: 'vercel-functions api/hello.func',
    dir: 'vercel-functions/output/functions/api/hello.func',
    shape: 'node-listener',
    rows: [
      ['GET', '/api/hello?name=bob', {}, undefined, 200, ['"name":"bob"', '"kind":"node-helpers"']],
      ['GET', '/hello', {}, undefined, 200, ['"kind":"node-helpers"']],
    ],
  },
  {
    name: 'vercel-functions api/echo.func',
    dir: 'vercel-functions/output/functions/api/echo.func',
    shape: 'node-listener',
    rows: [
      ['POST', '/api/echo', JSON_BODY, '{"a":1}', 201, ['"echo":{"a":1}']],
      ['GET', '/api/echo', {}, undefined, 405, ['method not allowed']],
    ],
  },
  {
    name: 'vercel-functions api/users/[id].func',
    dir: 'vercel-functions/output/functions/api/users/[id].func',
    shape: 'node-listener',
    rows: [
      ['GET', '/api/users/42?id=42', {}, undefined, 200, ['"id":"42"']],
      ['GET', '/u/42?id=42', {}, undefined, 200, ['"id":"42"']],
    ],
  },
  {
    name: 'vercel-functions api/web.func',
    dir: 'vercel-functions/output/functions/api/web.func',
    shape: 'web-methods',
    rows: [
      ['GET', '/api/web?q=1', {}, undefined, 200, ['"kind":"node-web"', '"path":"/api/web"', '"q":"1"']],
      ['POST', '/api/web', JSON_BODY, '{"a":1}', 201, ['"echo":{"a":1}']],
    ],
  },
];

for (const fn of FUNCTIONS) {
  const funcDir = path.join(FIXTURES, fn.dir);
  const present = fs.existsSync(path.join(funcDir, '.vc-config.json'));
  describe(fn.name, { skip: present ? false : `fixture not found at ${funcDir}` }, () => {
    let launcher;
    before(async () => {
      launcher = await startFunction(funcDir);
    });
    after(async () => {
      await launcher?.stop();
    });

    it(`specializes as ${fn.shape}`, () => {
      const { status, json } = launcher.specializeResult;
      assert.equal(status, 200, JSON.stringify(json));
      assert.equal(json.ok, true);
      assert.equal(json.shape, fn.shape);
      assert.equal(typeof json.initMs, 'number');
    });

    itServesRows(() => launcher, fn.rows);
  });
}
