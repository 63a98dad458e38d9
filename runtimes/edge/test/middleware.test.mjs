// Middleware mode (specialize with "middleware": true, spec 3.6): returning
// nothing means "continue", any Response goes back unchanged with its
// x-middleware-* headers, errors are MIDDLEWARE_INVOCATION_FAILED.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { platformHeaders, syntheticDir, useEdgeFunction, waitFor } from '../testing/harness.mjs';

describe('middleware mode', () => {
  const fn = useEdgeFunction(syntheticDir('middleware'), { middleware: true });
  const call = (urlPath, id) => fn().request({ path: urlPath, headers: platformHeaders(id) });

  it('specializes', () => {
    assert.equal(fn().specializeResult.status, 200);
    assert.equal(fn().specializeResult.json.shape, 'web-function');
  });

  for (const urlPath of ['/mw/other', '/mw/null']) {
    it(`${urlPath}: undefined/null -> 200, x-middleware-next: 1, empty body`, async () => {
      const res = await call(urlPath);
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-middleware-next'], '1');
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.body, '');
    });
  }

  it('logs of the middleware carry the request id', async () => {
    await call('/mw/logged', 'tst1::mw-log');
    await waitFor(() => fn().stdout.includes('[tst1::mw-log] middleware passes /mw/logged\n'), 'the prefixed line');
  });

  it('a final Response passes through unchanged', async () => {
    const res = await call('/mw/blocked');
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-blocked'], 'yes');
    assert.equal(res.headers['x-middleware-next'], undefined);
    assert.equal(res.body, 'blocked by middleware');
  });

  it('x-middleware-rewrite is passed through for the worker', async () => {
    const res = await call('/mw/rewrite');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-middleware-rewrite'], 'https://fixture.example.test/rewritten?from=mw');
    assert.equal(res.body, '');
  });

  it('a NextResponse.next()-style Response keeps its request-header overrides', async () => {
    const res = await call('/mw/next-with-headers');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-middleware-next'], '1');
    assert.equal(res.headers['x-middleware-override-headers'], 'x-user');
    assert.equal(res.headers['x-middleware-request-x-user'], 'alice');
    assert.equal(res.headers['x-extra'], 'added');
  });

  for (const [urlPath, message] of [
    ['/mw/throw', 'middleware exploded'],
    ['/mw/string', 'it returned string'],
  ]) {
    it(`${urlPath}: 500 MIDDLEWARE_INVOCATION_FAILED, logged with the request id`, async () => {
      const id = `tst1::mw${urlPath.slice(4)}`;
      const res = await call(urlPath, id);
      assert.equal(res.status, 500);
      assert.equal(res.headers['x-vercel-error'], 'MIDDLEWARE_INVOCATION_FAILED');
      assert.equal(res.body, `A server error has occurred\n\nMIDDLEWARE_INVOCATION_FAILED\n\n${id}\n`);
      await waitFor(() => fn().stderr.includes(message), 'the error on stderr');
      const line = fn().stderr.split('\n').find((l) => l.includes('MIDDLEWARE_INVOCATION_FAILED in middleware.func'));
      assert.ok(line?.startsWith('[tst1::mw'), `stderr: ${fn().stderr}`);
    });
  }
});

describe('the same module as an ordinary edge function', () => {
  const fn = useEdgeFunction(syntheticDir('middleware'));
  it('returning undefined is an error: 500 EDGE_FUNCTION_INVOCATION_FAILED', async () => {
    const res = await fn().request({ path: '/mw/other', headers: platformHeaders() });
    assert.equal(res.status, 500);
    assert.equal(res.headers['x-vercel-error'], 'EDGE_FUNCTION_INVOCATION_FAILED');
    assert.equal(res.headers['x-middleware-next'], undefined);
  });
});
