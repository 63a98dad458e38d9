// The launcher's life: start and readiness, specialization (success, refusal,
// failure), requests during specialization, errors thrown by handlers,
// waitUntil and health, log-line prefixes, environment.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Launcher,
  platformHeaders,
  readConfig,
  startFunction,
  syntheticDir,
  useFunction,
  waitFor,
} from '../testing/harness.mjs';

describe('start and specialization', () => {
  let launcher;
  before(async () => {
    launcher = new Launcher();
    // A stale socket file from a previous process must not stop the start.
    fs.writeFileSync(launcher.socket, 'stale');
    await launcher.start();
  });
  after(async () => {
    await launcher?.stop();
  });

  it('prints exactly one line, "ready <pid>", once it accepts connections', async () => {
    assert.equal(launcher.stdout, `ready ${launcher.child.pid}\n`);
    assert.ok(fs.statSync(launcher.socket).isSocket());
    assert.equal(launcher.stderr, '');
  });

  it('answers health before specialization', async () => {
    assert.deepEqual(await launcher.health(), { inflight: 0, pendingWaitUntil: 0 });
  });

  it('answers 503 to an invocation before specialization', async () => {
    const res = await launcher.request({ path: '/anything', headers: platformHeaders() });
    assert.equal(res.status, 503);
    assert.match(JSON.parse(res.body).error, /not specialized/);
  });

  it('refuses a specialize that is not a POST', async () => {
    const res = await launcher.request({ path: '/__nimbus/specialize' });
    assert.equal(res.status, 405);
  });

  it('answers 400 to a malformed specialize body and stays unspecialized', async () => {
    const bad = await launcher.request({ method: 'POST', path: '/__nimbus/specialize', body: '{"dir": 42' });
    assert.equal(bad.status, 400);
    const missing = await launcher.request({ method: 'POST', path: '/__nimbus/specialize', body: '{"config": {}}' });
    assert.equal(missing.status, 400);
    assert.match(JSON.parse(missing.body).error, /"dir"/);
  });

  it('specializes, then refuses a second specialize with 409', async () => {
    const dir = syntheticDir('web-function');
    const first = await launcher.specialize(dir, readConfig(dir));
    assert.equal(first.status, 200);
    assert.equal(first.json.shape, 'web-function');
    const second = await launcher.specialize(dir, readConfig(dir));
    assert.equal(second.status, 409);
    assert.equal(second.json.ok, false);
    const res = await launcher.request({ path: '/still', headers: platformHeaders() });
    assert.equal(res.body, 'web-function GET /still ');
  });
});

describe('a request that arrives while the launcher is specializing', () => {
  let launcher;
  before(async () => {
    launcher = await new Launcher().start();
  });
  after(async () => {
    await launcher?.stop();
  });

  it('waits for the function and gets its full body (helpers read it)', async () => {
    const dir = syntheticDir('slow-init');
    const specialized = launcher.specialize(dir, readConfig(dir));
    await waitFor(() => launcher.stdout.includes('slow-init: import started'), 'the import to start');
    const res = await launcher.request({
      method: 'POST',
      path: '/queued?early=1',
      headers: { ...platformHeaders(), 'content-type': 'application/json' },
      body: '{"sent":"during specialization"}',
    });
    assert.equal((await specialized).status, 200);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { body: { sent: 'during specialization' }, query: { early: '1' } });
  });
});

describe('a module that fails to load', () => {
  const cases = [
    ['import-throws', /Error: boom at import\n\s+at /],
    ['missing-dependency', /Cannot find module 'nimbus-package-that-does-not-exist'/],
    ['no-exports', /Can't detect way to handle request/],
  ];
  for (const [name, expected] of cases) {
    describe(name, () => {
      const fn = useFunction(name);
      it('specialize answers 500 with the error and its stack', () => {
        const { status, json } = fn().specializeResult;
        assert.equal(status, 500);
        assert.equal(json.ok, false);
        assert.match(json.error, expected);
      });
      it('every later request gets 500 with the same error; the process stays up', async () => {
        for (let i = 0; i < 2; i++) {
          const res = await fn().request({ path: `/after-failure-${i}`, headers: platformHeaders() });
          assert.equal(res.status, 500);
          assert.deepEqual(JSON.parse(res.body), fn().specializeResult.json);
        }
        assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 0 });
        const again = await fn().specialize(syntheticDir('web-function'), readConfig(syntheticDir('web-function')));
        assert.equal(again.status, 409);
        assert.equal(fn().exited, false);
      });
    });
  }
});

describe('errors thrown by a (req, res) handler', () => {
  const fn = useFunction('throws');
  const call = (urlPath, id) => fn().request({ path: urlPath, headers: platformHeaders(id) });

  for (const [urlPath, message] of [
    ['/sync', 'thrown synchronously'],
    ['/async', 'rejected asynchronously'],
    ['/uncaught', 'thrown from a timer'],
  ]) {
    it(`${urlPath}: 500 FUNCTION_INVOCATION_FAILED, error logged with the request id, next request served`, async () => {
      const id = `tst1::err${urlPath.slice(1)}`;
      const res = await call(urlPath, id);
      assert.equal(res.status, 500);
      assert.match(res.body, /FUNCTION_INVOCATION_FAILED/);
      assert.ok(res.body.includes(id));
      assert.equal(res.headers['x-vercel-error'], 'FUNCTION_INVOCATION_FAILED');
      await waitFor(() => fn().stderr.includes(message), 'the error on stderr');
      const line = fn().stderr.split('\n').find((l) => l.includes('FUNCTION_INVOCATION_FAILED') && l.includes(message));
      assert.ok(line?.startsWith(`[${id}] `), `stderr: ${fn().stderr}`);
      const ok = await call('/ok');
      assert.equal(ok.status, 200);
      assert.equal(ok.body, 'still serving');
    });
  }

  it('/after-headers: the response is cut short, the next request is served', async () => {
    await assert.rejects(call('/after-headers'), (err) => /aborted|socket hang up|ECONNRESET|terminated/i.test(err.message));
    const ok = await call('/ok');
    assert.equal(ok.body, 'still serving');
    assert.equal(fn().exited, false);
  });
});

describe('errors from a Web handler', () => {
  const fn = useFunction('fetch-object');
  it('a thrown error: 500 FUNCTION_INVOCATION_FAILED', async () => {
    const res = await fn().request({ path: '/throw', headers: platformHeaders() });
    assert.equal(res.status, 500);
    assert.match(res.body, /FUNCTION_INVOCATION_FAILED/);
    await waitFor(() => fn().stderr.includes('fetch handler exploded'), 'the error on stderr');
  });
  it('a return value that is not a Response: 500, logged', async () => {
    const res = await fn().request({ path: '/not-a-response', headers: platformHeaders() });
    assert.equal(res.status, 500);
    await waitFor(() => fn().stderr.includes('must return a Response'), 'the error on stderr');
    const ok = await fn().request({ path: '/', headers: platformHeaders() });
    assert.equal(ok.status, 200);
  });
});

describe('waitUntil and health', () => {
  describe('context.waitUntil of a Web handler', () => {
    const fn = useFunction('fetch-object');
    it('health shows the pending promise after the response, then zero once it settles', async () => {
      const res = await fn().request({ path: '/wait', headers: platformHeaders() });
      assert.equal(res.status, 202);
      assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 1 });
      await fn().request({ path: '/release', headers: platformHeaders() });
      await waitFor(async () => (await fn().health()).pendingWaitUntil === 0, 'pendingWaitUntil 0');
    });
  });

  describe('@vercel/request-context global from a (req, res) handler', () => {
    const fn = useFunction('wait-until');
    it('get() gives waitUntil, headers and url of the current request', async () => {
      const res = await fn().request({ path: '/ctx?a=1', headers: platformHeaders('tst1::ctx') });
      assert.deepEqual(JSON.parse(res.body), {
        hasWaitUntil: 'function',
        id: 'tst1::ctx',
        url: 'https://fixture.example.test/ctx?a=1',
      });
      assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 1 });
      await fn().request({ path: '/release', headers: platformHeaders() });
      await waitFor(async () => (await fn().health()).pendingWaitUntil === 0, 'pendingWaitUntil 0');
    });
  });

  describe('inflight', () => {
    const fn = useFunction('stream-node');
    it('counts requests whose response has not finished', async () => {
      const res = await fn().open({ path: '/stream', headers: platformHeaders() });
      assert.equal((await fn().health()).inflight, 1);
      await fn().request({ path: '/release', headers: platformHeaders() });
      res.resume();
      await waitFor(async () => (await fn().health()).inflight === 0, 'inflight 0');
    });
  });
});

describe('log lines', () => {
  const fn = useFunction('logs');

  it('output at import (no request in flight) is not prefixed', () => {
    assert.match(fn().stdout, /^module loaded$/m);
  });

  it('every line written while a request is in flight starts with [x-vercel-id]', async () => {
    const id = 'tst1::logs-1';
    const res = await fn().request({ path: '/first', headers: platformHeaders(id) });
    assert.equal(res.body, 'logged');
    await waitFor(() => fn().stdout.includes('after a timer for /first'), 'the last line');
    const out = fn().stdout;
    for (const line of ['line one', 'line two', 'partial rest', 'after a timer for /first']) {
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
});

describe('environment', () => {
  let launcher;
  const dir = syntheticDir('env');
  before(async () => {
    launcher = await startFunction(dir, {
      env: { FROM_PROJECT: 'project', OVERRIDDEN: 'project', VERCEL: '0' },
      region: 'tst1',
      deploymentId: 'dpl_123',
    });
  });
  after(async () => {
    await launcher?.stop();
  });

  it('project env, then config.environment, then platform variables; cwd is the function dir', async () => {
    assert.equal(launcher.specializeResult.status, 200);
    const res = await launcher.request({ path: '/', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), {
      atImport: 'project',
      cwd: path.resolve(dir),
      env: {
        FROM_PROJECT: 'project',
        FROM_CONFIG: 'config',
        OVERRIDDEN: 'by-config',
        VERCEL: '1',
        VERCEL_REGION: 'tst1',
        VERCEL_DEPLOYMENT_ID: 'dpl_123',
        NODE_ENV: 'production',
      },
    });
  });
});

describe('warm-up', () => {
  it('the control path is not reserved once specialized: /__nimbus/warmup reaches the function', async () => {
    const launcher = await startFunction(syntheticDir('web-function'));
    try {
      const res = await launcher.request({ method: 'POST', path: '/__nimbus/warmup', headers: platformHeaders(), body: 'x' });
      assert.equal(res.body, 'web-function POST /__nimbus/warmup x');
    } finally {
      await launcher.stop();
    }
  });
});
