// The Vercel helpers of spec 3.3.3 on a CommonJS (req, res) handler.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { platformHeaders, useFunction } from '../testing/harness.mjs';

describe('Vercel helpers (shouldAddHelpers)', () => {
  const fn = useFunction('helpers-cjs');
  const get = (path, headers = {}) => fn().request({ path, headers: { ...platformHeaders(), ...headers } });
  const post = (path, contentType, body) =>
    fn().request({
      method: 'POST',
      path,
      headers: { ...platformHeaders(), ...(contentType === undefined ? {} : { 'content-type': contentType }) },
      body,
    });

  it('req.query: parsed from the URL, a repeated key becomes an array', async () => {
    const res = await get('/query?a=1&a=2&b=x%20y&c=');
    assert.deepEqual(JSON.parse(res.body).query, { a: ['1', '2'], b: 'x y', c: '' });
  });

  it('req.cookies: parsed Cookie header, first occurrence wins, quotes and escapes removed', async () => {
    const res = await get('/cookies', { cookie: 'a=1; b="two"; c=%20x; a=dup; broken' });
    assert.deepEqual(JSON.parse(res.body).cookies, { a: '1', b: 'two', c: ' x' });
    const none = await get('/cookies');
    assert.deepEqual(JSON.parse(none.body).cookies, {});
  });

  const bodyCases = [
    ['application/json', '{"a":[1,2]}', 'object', { a: [1, 2] }],
    ['application/json; charset=utf-8', '', 'object', {}],
    ['application/x-www-form-urlencoded', 'x=1&y=two&x=3', 'object', { x: ['1', '3'], y: 'two' }],
    ['text/plain', 'just text', 'string', 'just text'],
    ['application/octet-stream', 'AB', 'buffer', '4142'],
    ['application/xml', '<a/>', 'undefined', undefined],
    [undefined, 'no type', 'string', ''],
  ];
  for (const [contentType, body, type, value] of bodyCases) {
    it(`req.body for ${contentType ?? 'no Content-Type'} is ${type}`, async () => {
      const res = await post('/body', contentType, body);
      assert.equal(res.status, 200, res.body);
      const parsed = JSON.parse(res.body);
      assert.equal(parsed.type, type);
      assert.deepEqual(parsed.body, value);
    });
  }

  it('invalid JSON: the req.body getter fails with 400 when user code does not catch it', async () => {
    const res = await post('/body', 'application/json', '{not json');
    assert.equal(res.status, 400);
    assert.equal(res.body, 'Invalid JSON');
  });

  it('invalid JSON: user code can catch the ApiError (statusCode 400)', async () => {
    const res = await post('/catch-invalid-json', 'application/json', '{not json');
    assert.equal(res.status, 422);
    assert.deepEqual(JSON.parse(res.body), { caught: 'Invalid JSON', statusCode: 400 });
  });

  it('the request stream still yields the body after the helpers read it', async () => {
    const res = await post('/body-and-stream', 'application/json', '{"k":1}');
    assert.deepEqual(JSON.parse(res.body), { body: { k: 1 }, streamed: '{"k":1}' });
  });

  it('res.send(string): text/html; charset=utf-8, content-length, weak ETag', async () => {
    const res = await get('/send-string');
    assert.equal(res.status, 200);
    assert.equal(res.body, '<p>hi</p>');
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['content-length'], '9');
    assert.match(res.headers.etag, /^W\/"9-[A-Za-z0-9+/]{27}"$/);
  });

  it('res.send(string) on HEAD: headers without a body', async () => {
    const res = await fn().request({ method: 'HEAD', path: '/send-string', headers: platformHeaders() });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '9');
    assert.equal(res.body, '');
  });

  it('res.send(Buffer): application/octet-stream', async () => {
    const res = await get('/send-buffer');
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.deepEqual([...res.raw], [1, 2, 3]);
  });

  it('res.status(201).send(object): JSON', async () => {
    const res = await get('/send-object');
    assert.equal(res.status, 201);
    assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(res.body, '{"a":1}');
  });

  it('res.send(null): empty body', async () => {
    const res = await get('/send-null');
    assert.equal(res.status, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-length'], '0');
  });

  it('res.status(204).send(...): no body, no content headers', async () => {
    const res = await get('/send-204');
    assert.equal(res.status, 204);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-type'], undefined);
  });

  it('res.redirect(url) is 307; res.redirect(status, url) uses the status', async () => {
    const temporary = await get('/redirect');
    assert.equal(temporary.status, 307);
    assert.equal(temporary.headers.location, '/elsewhere');
    const permanent = await get('/redirect-301');
    assert.equal(permanent.status, 301);
    assert.equal(permanent.headers.location, '/moved');
  });
});
