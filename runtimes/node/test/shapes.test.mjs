// Every export shape of spec 3.3.2 (plus AWS-handler mode, 3.4), in CommonJS
// and ESM, detected at specialization and served.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { platformHeaders, useFunction } from '../testing/harness.mjs';

function assertShape(launcher, shape) {
  const { status, json } = launcher.specializeResult;
  assert.equal(status, 200, JSON.stringify(json));
  assert.deepEqual(Object.keys(json).sort(), ['initMs', 'ok', 'shape']);
  assert.equal(json.ok, true);
  assert.equal(json.shape, shape);
  assert.ok(json.initMs >= 0);
}

describe('per-method exports, ESM (.mjs)', () => {
  const fn = useFunction('web-methods');
  it('specializes as web-methods', () => assertShape(fn(), 'web-methods'));
  it('GET gets a Request whose URL is x-forwarded-proto + host + path', async () => {
    const res = await fn().request({ path: '/items/1?q=abc', headers: platformHeaders('tst1::req-1') });
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body);
    assert.equal(body.url, 'https://fixture.example.test/items/1?q=abc');
    assert.equal(body.path, '/items/1');
    assert.equal(body.q, 'abc');
    assert.equal(body.xff, '203.0.113.9');
    assert.equal(body.id, 'tst1::req-1');
  });
  it('POST streams the body into the Request', async () => {
    const res = await fn().request({ method: 'POST', path: '/items', headers: platformHeaders(), body: 'payload' });
    assert.equal(res.status, 201);
    assert.equal(res.body, 'posted:payload');
    assert.equal(res.headers['x-method'], 'POST');
  });
  it('a method without an export answers 405 with an empty body', async () => {
    for (const method of ['PUT', 'HEAD', 'OPTIONS']) {
      const res = await fn().request({ method, path: '/items', headers: platformHeaders() });
      assert.equal(res.status, 405, method);
      assert.equal(res.body, '');
      assert.equal(res.headers.allow, 'GET, POST');
    }
  });
});

describe('per-method exports, CommonJS (.js without "type")', () => {
  const fn = useFunction('web-methods-cjs');
  it('specializes as web-methods', () => assertShape(fn(), 'web-methods'));
  it('serves GET and DELETE', async () => {
    const get = await fn().request({ path: '/cjs', headers: platformHeaders() });
    assert.equal(get.status, 200);
    assert.equal(get.body, 'cjs GET /cjs');
    const del = await fn().request({ method: 'DELETE', path: '/cjs', headers: platformHeaders() });
    assert.equal(del.status, 204);
  });
});

describe('default export object with fetch', () => {
  const fn = useFunction('fetch-object');
  it('specializes as fetch-object', () => assertShape(fn(), 'fetch-object'));
  it('calls fetch as a method (this bound) with a context holding waitUntil', async () => {
    const res = await fn().request({ method: 'PATCH', path: '/', headers: platformHeaders() });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { greeting: 'hello from fetch', method: 'PATCH', waitUntil: 'function' });
  });
  it('keeps every set-cookie of the Response', async () => {
    const res = await fn().request({ path: '/cookies', headers: platformHeaders() });
    assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
  });
});

describe('default Web handler function (arity 1)', () => {
  const fn = useFunction('web-function');
  it('specializes as web-function', () => assertShape(fn(), 'web-function'));
  it('serves GET and POST', async () => {
    const get = await fn().request({ path: '/a/b', headers: platformHeaders() });
    assert.equal(get.body, 'web-function GET /a/b ');
    assert.equal(get.headers['x-shape'], 'web-function');
    const post = await fn().request({ method: 'POST', path: '/p', headers: platformHeaders(), body: 'x=1' });
    assert.equal(post.body, 'web-function POST /p x=1');
  });
  it('HEAD gets the headers without the body', async () => {
    const res = await fn().request({ method: 'HEAD', path: '/h', headers: platformHeaders() });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-shape'], 'web-function');
    assert.equal(res.body, '');
  });
});

describe('useWebApi: default (request, context) function', () => {
  const fn = useFunction('web-api');
  it('specializes as web-function despite arity 2', () => assertShape(fn(), 'web-function'));
  it('passes the Request and a context with waitUntil', async () => {
    const res = await fn().request({ path: '/w?x=1', headers: { ...platformHeaders(), 'x-forwarded-proto': 'http' } });
    assert.deepEqual(JSON.parse(res.body), { shape: 'web-api', url: 'http://fixture.example.test/w?x=1', waitUntil: 'function' });
  });
});

describe('(req, res) listener, ESM, no helpers', () => {
  const fn = useFunction('listener-esm');
  it('specializes as node-listener', () => assertShape(fn(), 'node-listener'));
  it('gets the incoming request as is (path, query, platform headers, body stream)', async () => {
    const res = await fn().request({ method: 'PUT', path: '/orig/path?x=1&x=2', headers: platformHeaders(), body: 'raw body' });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), {
      shape: 'node-listener',
      url: '/orig/path?x=1&x=2',
      method: 'PUT',
      body: 'raw body',
      host: 'fixture.example.test',
      realIp: '203.0.113.9',
      helpers: { query: 'undefined', json: 'undefined' },
    });
  });
});

describe('(req, res) listener, CommonJS, with helpers', () => {
  const fn = useFunction('helpers-cjs');
  it('specializes as node-listener', () => assertShape(fn(), 'node-listener'));
  it('has req.query and res.json', async () => {
    const res = await fn().request({ path: '/query?a=1', headers: platformHeaders() });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { query: { a: '1' } });
  });
});

describe('Express-style app (function with listen): no helpers', () => {
  const fn = useFunction('express-like');
  it('specializes as node-listener', () => assertShape(fn(), 'node-listener'));
  it('is called as a listener without helpers even with shouldAddHelpers', async () => {
    const res = await fn().request({ path: '/x', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), { shape: 'express-like', helpers: 'undefined', url: '/x' });
  });
});

describe('server object (exported http.Server, .cjs in a "type": "module" package)', () => {
  const fn = useFunction('server-object');
  it('specializes as server-object', () => assertShape(fn(), 'server-object'));
  it('hands requests to the server', async () => {
    const res = await fn().request({ method: 'POST', path: '/s?1', headers: platformHeaders(), body: 'ignored' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'server-object POST /s?1');
  });
});

describe('app object whose listen() creates the server (Koa style)', () => {
  const fn = useFunction('app-object');
  it('specializes as server-object', () => assertShape(fn(), 'server-object'));
  it('hands requests to the server listen() created', async () => {
    const res = await fn().request({ path: '/koa', headers: platformHeaders() });
    assert.equal(res.body, 'app-object /koa');
  });
});

describe('module that calls listen() at import', () => {
  const fn = useFunction('listen-at-import');
  it('specializes as listen-at-import', () => assertShape(fn(), 'listen-at-import'));
  it('captures the server: listen callback ran, requests reach it', async () => {
    const res = await fn().request({ path: '/imported?y=2', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), { shape: 'listen-at-import', url: '/imported?y=2', listening: true, listenedAt: 'string' });
  });
});

describe('module that calls listen() shortly after import', () => {
  const fn = useFunction('listen-later');
  it('specializes as listen-at-import', () => assertShape(fn(), 'listen-at-import'));
  it('serves through the late server', async () => {
    const res = await fn().request({ path: '/', headers: platformHeaders() });
    assert.equal(res.body, 'listened later');
  });
});

describe('ESM by package.json "type": "module" with top-level await', () => {
  const fn = useFunction('tla');
  it('specializes as node-listener after the await', () => assertShape(fn(), 'node-listener'));
  it('serves with the awaited state', async () => {
    const res = await fn().request({ path: '/t', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), { shape: 'tla', initialised: true, url: '/t' });
  });
});

describe('AWS Lambda handler mode (awsLambdaHandler)', () => {
  const fn = useFunction('aws');
  it('specializes as aws-lambda', () => assertShape(fn(), 'aws-lambda'));
  it('calls the handler with an API Gateway v1 event and writes its result', async () => {
    const res = await fn().request({ method: 'POST', path: '/lambda?k=v', headers: platformHeaders(), body: 'hello lambda' });
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-aws'], 'yes');
    assert.deepEqual(JSON.parse(res.body), {
      path: '/lambda',
      method: 'POST',
      query: { k: 'v' },
      body: 'hello lambda',
      host: 'fixture.example.test',
      remaining: true,
    });
  });
});
