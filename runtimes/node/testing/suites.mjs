// Tests of what both launchers share (the process in lib/server.mjs, the Web
// bridge, log prefixes), written once: each function registers hooks or
// it() blocks in the caller's current describe(), for the launcher script
// and functions the caller names. Used by ../test/ and ../../edge/test/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { Launcher, nextChunk, platformHeaders, readRest, waitFor, withDeadline } from './harness.mjs';

// before/after hooks for an unspecialized launcher running `script`; with
// `staleSocket`, a stale file lies where its socket goes. Returns a getter.
export function useStemCell(script, { staleSocket = false } = {}) {
  let launcher;
  before(async () => {
    launcher = new Launcher(script);
    if (staleSocket) fs.writeFileSync(launcher.socket, 'stale');
    await launcher.start();
  });
  after(async () => {
    await launcher?.stop();
  });
  return () => launcher;
}

// The control endpoints of a launcher that has not been specialized (leaves
// it unspecialized).
export function itAnswersBeforeSpecialization(launcher) {
  it('prints exactly one line, "ready <pid>", once it accepts connections', () => {
    assert.equal(launcher().stdout, `ready ${launcher().child.pid}\n`);
    assert.ok(fs.statSync(launcher().socket).isSocket());
    assert.equal(launcher().stderr, '');
  });

  it('answers health before specialization', async () => {
    assert.deepEqual(await launcher().health(), { inflight: 0, pendingWaitUntil: 0 });
  });

  it('answers 503 to an invocation before specialization', async () => {
    const res = await launcher().request({ path: '/anything', headers: platformHeaders() });
    assert.equal(res.status, 503);
    assert.match(JSON.parse(res.body).error, /not specialized/);
    assert.equal(res.headers['x-nimbus-specialize-failed'], undefined);
  });

  it('refuses a specialize that is not a POST with 405', async () => {
    const res = await launcher().request({ path: '/__nimbus/specialize' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'POST');
  });

  it('answers 400 to a malformed specialize body and stays unspecialized', async () => {
    const post = (body) => launcher().request({ method: 'POST', path: '/__nimbus/specialize', body });
    assert.equal((await post('{"dir": 42')).status, 400);
    const missing = await post('{"config": {}}');
    assert.equal(missing.status, 400);
    assert.match(JSON.parse(missing.body).error, /"dir"/);
    assert.equal((await launcher().request({ path: '/x', headers: platformHeaders() })).status, 503);
  });
}

// Specializes the launcher with `dir` (and `config`), refuses a second
// specialize with 409, and still serves: `check(first, res)` looks at the
// first specialize answer and the answer to GET /still.
export function itSpecializesOnce(launcher, dir, config, check) {
  it('specializes, then refuses a second specialize with 409', async () => {
    const first = await launcher().specialize(dir, config);
    assert.equal(first.status, 200, first.body);
    assert.equal(first.json.ok, true);
    assert.equal(typeof first.json.initMs, 'number');
    const second = await launcher().specialize(dir, config);
    assert.equal(second.status, 409);
    assert.equal(second.json.ok, false);
    check(first, await launcher().request({ path: '/still', headers: platformHeaders() }));
  });

  it('after specialization /__nimbus/warmup is an ordinary function path', async () => {
    const res = await launcher().request({ method: 'POST', path: '/__nimbus/warmup', headers: platformHeaders(), body: 'x' });
    assert.equal(res.status, 200);
    assert.ok(res.body.includes('/__nimbus/warmup'), res.body);
  });
}

// A request that arrives while the launcher specializes `dir` (a function
// whose import says "<marker>" and then takes a while) waits for the outcome,
// its body held back unread meanwhile. `request`: the invocation; `check(spec,
// res)`: the specialize answer and the invocation's.
export function itHoldsRequestsWhileSpecializing(launcher, { dir, config, marker, request, check }) {
  it('waits for the specialization and then gets its outcome, with the whole body', async () => {
    const specialized = launcher().specialize(dir, config);
    await waitFor(() => launcher().stdout.includes(marker), 'the import to start');
    const res = await launcher().request({ method: 'POST', path: '/queued?early=1', ...request });
    check(await specialized, res);
  });
}

// A request that arrives while the launcher specializes the synthetic
// `slow-fail` function (node's testing/functions/slow-fail.func; `config`
// for the launcher at hand) is held and then answered with the failure.
export function itAnswersHeldRequestsWithTheFailure(launcher, dir, config) {
  itHoldsRequestsWhileSpecializing(launcher, {
    dir,
    config,
    marker: 'slow-fail: import started',
    request: { headers: { ...platformHeaders(), 'content-type': 'text/plain' }, body: 'sent during specialization' },
    check(specialized, res) {
      assert.equal(specialized.status, 500);
      assert.match(specialized.json.error, /slow failure at import/);
      assert.equal(res.status, 500);
      assert.equal(res.headers['x-nimbus-specialize-failed'], '1');
      assert.deepEqual(JSON.parse(res.body), specialized.json);
    },
  });
}

// An invocation pipelined right behind the specialize request on the same
// connection is held like any invocation during specialization (not refused
// with 503) and served once the function is ready; its response (containing
// `expected`) follows the specialize answer.
export function itServesAPipelinedInvocation(launcher, dir, config, expected) {
  it('serves an invocation pipelined behind the specialize request', async () => {
    const body = JSON.stringify({ dir, config, env: {}, functionName: 'pipelined' });
    const socket = net.createConnection(launcher().socket);
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk) => (text += chunk));
    const closed = new Promise((resolve, reject) => {
      socket.once('close', resolve);
      socket.once('error', reject);
    });
    socket.write(
      `POST /__nimbus/specialize HTTP/1.1\r\nhost: instance\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
        'GET /pipelined HTTP/1.1\r\nhost: fixture.example.test\r\nx-forwarded-proto: https\r\nconnection: close\r\n\r\n',
    );
    await withDeadline(closed, 10000, 'both responses');
    const heads = [...text.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(heads, [200, 200], text);
    assert.ok(text.indexOf('"ok":true') < text.indexOf(expected), text);
  });
}

// An invocation marked x-nimbus-await-specialize that arrives before any
// specialize request is held (not refused with 503) until one arrives, then
// served; `expected` is part of its response.
export function itHoldsAnInvocationAwaitingSpecialize(launcher, dir, config, expected) {
  it('holds an invocation marked x-nimbus-await-specialize until specialize arrives', async () => {
    const early = launcher().request({ path: '/awaiting', headers: { ...platformHeaders(), 'x-nimbus-await-specialize': '1' } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const specialized = await launcher().specialize(dir, config);
    assert.equal(specialized.status, 200);
    const res = await withDeadline(early, 10000, 'the held invocation');
    assert.equal(res.status, 200, res.body);
    assert.ok(res.body.includes(expected), res.body);
  });
}

// Invocations after a failed specialization (the launcher getter's
// specializeResult is that failure; `expected` matches its error).
export function itServesTheFailure(fn, expected) {
  it('specialize answers 500 with the error and its stack, also on stderr', async () => {
    const { status, json } = fn().specializeResult;
    assert.equal(status, 500);
    assert.equal(json.ok, false);
    assert.match(json.error, expected);
    await waitFor(() => fn().stderr.includes('specialize failed for '), 'the error on stderr');
  });

  it('every later invocation gets 500, x-nimbus-specialize-failed: 1 and the same JSON; the process stays up', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fn().request({ path: `/after-failure-${i}`, headers: platformHeaders() });
      assert.equal(res.status, 500);
      assert.equal(res.headers['x-nimbus-specialize-failed'], '1');
      assert.equal(res.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(res.body), fn().specializeResult.json);
    }
    assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 0 });
    const again = await fn().specialize('/elsewhere', {});
    assert.equal(again.status, 409);
    assert.equal(again.headers['x-nimbus-specialize-failed'], undefined);
    assert.equal(fn().exited, false);
  });
}

// Log lines of the synthetic `logs` function (same behaviour in both
// launchers): `lines` are those one request writes to stdout.
export function itPrefixesLogLines(fn, lines) {
  it('output at import (no request in flight) is not prefixed', () => {
    assert.match(fn().stdout, /^module loaded$/m);
  });

  it('every line written while a request is in flight starts with [x-vercel-id]', async () => {
    const id = 'tst1::logs-1';
    const res = await fn().request({ path: '/first', headers: platformHeaders(id) });
    assert.equal(res.body, 'logged');
    await waitFor(() => fn().stdout.includes('after a timer for /first'), 'the last line');
    await waitFor(() => fn().stderr.includes('an error line'), 'the stderr line');
    const out = fn().stdout;
    for (const line of [...lines, 'after a timer for /first']) {
      assert.ok(out.includes(`[${id}] ${line}\n`), `stdout lacks "[${id}] ${line}": ${out}`);
    }
    assert.ok(fn().stderr.includes(`[${id}] an error line\n`), `stderr: ${fn().stderr}`);
  });

  it('uses x-nimbus-id when there is no x-vercel-id', async () => {
    const headers = { ...platformHeaders(), 'x-nimbus-id': 'nimbus-42' };
    delete headers['x-vercel-id'];
    await fn().request({ path: '/second', headers });
    await waitFor(() => fn().stdout.includes('[nimbus-42] after a timer for /second\n'), 'the prefixed line');
    assert.ok(fn().stdout.includes('[nimbus-42] line one\n'));
  });

  it('two concurrent requests each get their own prefix', async () => {
    await Promise.all([
      fn().request({ path: '/a', headers: platformHeaders('tst1::A') }),
      fn().request({ path: '/b', headers: platformHeaders('tst1::B') }),
    ]);
    await waitFor(
      () => fn().stdout.includes('[tst1::A] after a timer for /a\n') && fn().stdout.includes('[tst1::B] after a timer for /b\n'),
      'both prefixed lines',
    );
  });
}

// Web streaming with the synthetic `stream-web` function (node's
// testing/functions/stream-web.func, which the edge launcher serves too).
export function itStreamsWebResponses(fn) {
  it('the first event arrives before the handler is released to send the second', async () => {
    const res = await fn().open({ path: '/sse', headers: platformHeaders() });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(await nextChunk(res), 'data: one\n\n');
    // Only now does the handler get the signal to produce the second event.
    const release = await fn().request({ path: '/release', headers: platformHeaders() });
    assert.equal(release.body, 'released');
    assert.equal(await readRest(res), 'data: two\n\n');
  });

  it('a request body streams into the Request while the response streams back', async () => {
    const req = http.request({
      socketPath: fn().socket,
      method: 'POST',
      path: '/echo',
      agent: false,
      headers: { ...platformHeaders(), 'content-type': 'application/octet-stream' },
    });
    req.setTimeout(10000, () => req.destroy(new Error('duplex echo timed out')));
    const response = withDeadline(
      new Promise((resolve, reject) => {
        req.once('response', resolve);
        req.once('error', reject);
      }),
      10000,
      'echo response head',
    );
    req.write('ping-1|');
    const res = await response;
    assert.equal(res.statusCode, 200);
    // The request is still open: its first chunk has come back already.
    assert.equal(await nextChunk(res), 'ping-1|');
    req.end('ping-2');
    assert.equal(await readRest(res), 'ping-2');
  });

  it('a client that disconnects cancels the response stream and aborts request.signal', async () => {
    const res = await fn().open({ path: '/endless', headers: platformHeaders() });
    assert.equal(await nextChunk(res), 'tick\n');
    assert.equal((await fn().health()).inflight, 1);
    res.destroy();
    const state = await waitFor(async () => {
      const r = await fn().request({ path: '/cancelled', headers: platformHeaders() });
      const body = JSON.parse(r.body);
      return body.cancelled && body.aborted && body;
    }, 'the stream to be cancelled');
    assert.deepEqual(state, { cancelled: true, aborted: true });
    await waitFor(async () => (await fn().health()).inflight === 0, 'inflight back to 0');
  });
}

// EXPECT.md rows the nitro fixture app answers alike in its Node
// (nitro-vercel) and edge (nitro-vercel-edge) builds.
const JSON_BODY = { 'content-type': 'application/json' };
export const NITRO_ROWS = [
  ['GET', '/', {}, undefined, 200, ['Nitro fixture home']],
  ['GET', '/ssr?q=abc', {}, undefined, 200, ['Nitro SSR page', 'q=abc']],
  ['GET', '/api/hello?name=bob', {}, undefined, 200, ['"name":"bob"']],
  ['POST', '/api/echo', JSON_BODY, '{"a":1}', 201, ['"echo":{"a":1}']],
  ['GET', '/api/echo', {}, undefined, 405, []],
  ['GET', '/cached/xyz', {}, undefined, 200, ['"cached":"xyz"']],
  ['GET', '/nope', {}, undefined, 404, ['Cannot find any route matching /nope']],
];

// The EXPECT.md rows a fixture function serves: [method, path the function
// sees, extra headers, body, status, body contains[], response headers (a
// value or a RegExp)].
export function itServesRows(fn, rows) {
  for (const [method, urlPath, extraHeaders, body, status, contains, responseHeaders = {}] of rows) {
    it(`${method} ${urlPath} -> ${status}`, async () => {
      const res = await fn().request({ method, path: urlPath, headers: { ...platformHeaders(), ...extraHeaders }, body });
      assert.equal(res.status, status, `body: ${res.body.slice(0, 500)}`);
      for (const text of contains) assert.ok(res.body.includes(text), `body lacks ${text}: ${res.body.slice(0, 500)}`);
      for (const [name, expected] of Object.entries(responseHeaders)) {
        if (expected instanceof RegExp) assert.match(res.headers[name] ?? '', expected);
        else assert.equal(res.headers[name], expected);
      }
    });
  }
}
