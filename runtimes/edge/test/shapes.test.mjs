// Every handler shape an edge entry module can have, loaded as Node loads it
// (ESM, CommonJS through Node's interop, top-level await), the Request the
// handler gets, and a deploy-time bundle taking precedence over the entrypoint.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_ESBUILD, platformHeaders, syntheticDir, useBundledFunction, useEdgeFunction } from '../testing/harness.mjs';

describe('web-function: default export (request, context)', () => {
  const fn = useEdgeFunction(syntheticDir('web-function'));

  it('is detected', () => {
    assert.equal(fn().specializeResult.json.shape, 'web-function');
  });

  it('gets a Request with the public URL, headers, a signal and the streamed body', async () => {
    const res = await fn().request({
      method: 'POST',
      path: '/echo/path?x=1&y=%20z',
      headers: { ...platformHeaders(), 'content-type': 'text/plain' },
      body: 'the request body',
    });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), {
      shape: 'web-function',
      method: 'POST',
      url: 'https://fixture.example.test/echo/path?x=1&y=%20z',
      body: 'the request body',
      contentType: 'text/plain',
      host: 'fixture.example.test',
      hasSignal: true,
      edgeRuntime: 'edge-runtime',
    });
  });

  it('builds the URL from x-forwarded-host over Host, http unless x-forwarded-proto says https', async () => {
    const headers = { host: 'internal.test', 'x-forwarded-host': 'fwd.example.test, proxy.test', 'x-forwarded-proto': 'ftp' };
    const res = await fn().request({ path: '/p', headers });
    assert.equal(JSON.parse(res.body).url, 'http://fwd.example.test/p');
    assert.equal(JSON.parse(res.body).host, 'fwd.example.test');
    const plain = await fn().request({ path: '/p', headers: { host: 'only-host.test' } });
    assert.equal(JSON.parse(plain.body).url, 'http://only-host.test/p');
  });
});

describe('fetch-object: default export object with fetch()', () => {
  const fn = useEdgeFunction(syntheticDir('fetch-object'));
  it('is detected and called as a method', async () => {
    assert.equal(fn().specializeResult.json.shape, 'fetch-object');
    const res = await fn().request({ method: 'PUT', path: '/any', headers: platformHeaders() });
    assert.equal(res.body, 'fetch-object PUT /any');
  });
});

describe('web-methods: named GET/POST exports after top-level await', () => {
  const fn = useEdgeFunction(syntheticDir('web-methods'));

  it('is detected', () => {
    assert.equal(fn().specializeResult.json.shape, 'web-methods');
  });

  it('routes by method', async () => {
    const get = await fn().request({ path: '/m?q=1', headers: platformHeaders() });
    assert.equal(get.body, 'hello GET ?q=1');
    const post = await fn().request({
      method: 'POST',
      path: '/m',
      headers: { ...platformHeaders(), 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.equal(post.status, 201);
    assert.deepEqual(JSON.parse(post.body), { echo: { a: 1 }, waitUntil: 'function' });
  });

  it('answers 405 with allow for a method without an export', async () => {
    const res = await fn().request({ method: 'DELETE', path: '/m', headers: platformHeaders() });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, POST');
    assert.equal(res.body, '');
  });
});

describe('CommonJS exports.default = handler (arrives as default.default)', () => {
  const fn = useEdgeFunction(syntheticDir('cjs-default'));
  it('is unwrapped to the handler', async () => {
    assert.equal(fn().specializeResult.json.shape, 'web-function');
    const res = await fn().request({ path: '/api/edge', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), { shape: 'cjs-default', path: '/api/edge', emitter: 'function' });
  });
});

describe('CommonJS module.exports = { GET, DELETE }', () => {
  const fn = useEdgeFunction(syntheticDir('cjs-methods'));
  it('is detected as web-methods', async () => {
    assert.equal(fn().specializeResult.json.shape, 'web-methods');
    assert.equal((await fn().request({ path: '/c', headers: platformHeaders() })).body, 'cjs GET /c');
    assert.equal((await fn().request({ method: 'DELETE', path: '/c', headers: platformHeaders() })).status, 204);
    const post = await fn().request({ method: 'POST', path: '/c', headers: platformHeaders(), body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, DELETE');
  });
});

describe('bundled CommonJS (.nimbus/edge-bundle.mjs)', { skip: NO_ESBUILD }, () => {
  for (const [name, shape] of [
    ['cjs-default', 'web-function'],
    ['cjs-methods', 'web-methods'],
  ]) {
    describe(name, () => {
      const fn = useBundledFunction(syntheticDir(name));
      it(`the bundle is loaded instead of the entrypoint; shape ${shape}`, async () => {
        assert.deepEqual(fn().result, { bundled: true, bytes: fn().result.bytes, reason: 'entrypoint is CommonJS' });
        const { json } = fn().launcher.specializeResult;
        assert.equal(json.bundled, true);
        assert.equal(json.shape, shape);
        const res = await fn().launcher.request({ path: '/api/edge', headers: platformHeaders() });
        assert.equal(res.status, 200);
      });
    });
  }
});

describe('bundled ESM with a package dependency', { skip: NO_ESBUILD }, () => {
  const fn = useBundledFunction(syntheticDir('esm-deps'));
  it('serves the bundle, built with the edge-light condition', async () => {
    assert.equal(fn().launcher.specializeResult.json.bundled, true);
    const res = await fn().launcher.request({ path: '/', headers: platformHeaders() });
    assert.equal(res.body, 'hello from the edge-light build! 65646765');
  });
});
