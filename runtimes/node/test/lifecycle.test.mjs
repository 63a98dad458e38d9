// The launcher's life: start and readiness, specialization (success, refusal,
// failure), requests during specialization, errors thrown by handlers,
// waitUntil and health, log-line prefixes, environment.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  LAUNCHER,
  platformHeaders,
  readConfig,
  startFunction,
  syntheticDir,
  useFunction,
  waitFor,
} from '../testing/harness.mjs';
import {
  itAnswersBeforeSpecialization,
  itAnswersHeldRequestsWithTheFailure,
  itHoldsRequestsWhileSpecializing,
  itPrefixesLogLines,
  itServesAPipelinedInvocation,
  itHoldsAnInvocationAwaitingSpecialize,
  itServesTheFailure,
  itSpecializesOnce,
  useStemCell,
} from '../testing/suites.mjs';

describe('start and specialization', () => {
  // A stale socket file from a previous process must not stop the start.
  const launcher = useStemCell(LAUNCHER, { staleSocket: true });
  itAnswersBeforeSpecialization(launcher);
  const dir = syntheticDir('web-function');
  itSpecializesOnce(launcher, dir, readConfig(dir), (first, res) => {
    assert.equal(first.json.shape, 'web-function');
    assert.equal(res.body, 'web-function GET /still ');
  });
});

describe('a request that arrives while the launcher is specializing', () => {
  const dir = syntheticDir('slow-init');
  itHoldsRequestsWhileSpecializing(useStemCell(LAUNCHER), {
    dir,
    config: readConfig(dir),
    marker: 'slow-init: import started',
    request: { headers: { ...platformHeaders(), 'content-type': 'application/json' }, body: '{"sent":"during specialization"}' },
    check(specialized, res) {
      assert.equal(specialized.status, 200);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(JSON.parse(res.body), { body: { sent: 'during specialization' }, query: { early: '1' } });
    },
  });
});

describe('an invocation pipelined behind the specialize request', () => {
  const dir = syntheticDir('web-function');
  itServesAPipelinedInvocation(useStemCell(LAUNCHER), dir, readConfig(dir), 'web-function GET /pipelined ');
  itHoldsAnInvocationAwaitingSpecialize(useStemCell(LAUNCHER), dir, readConfig(dir), 'web-function GET /awaiting ');
});

describe('a request that arrives while a specialization fails', () => {
  const dir = syntheticDir('slow-fail');
  itAnswersHeldRequestsWithTheFailure(useStemCell(LAUNCHER), dir, readConfig(dir));
});

describe('a module that fails to load', () => {
  const cases = [
    ['import-throws', /Error: boom at import\n\s+at /],
    ['missing-dependency', /Cannot find module 'nimbus-package-that-does-not-exist'/],
    ['no-exports', /Can't detect way to handle request/],
  ];
  for (const [name, expected] of cases) {
    describe(name, () => {
      itServesTheFailure(useFunction(name), expected);
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
      assert.equal(res.headers['x-nimbus-specialize-failed'], undefined);
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
  // A line continued by a later write ("partial" + " rest") is prefixed once.
  itPrefixesLogLines(useFunction('logs'), ['line one', 'line two', 'partial rest']);
});

describe('after the warm-up', () => {
  const fn = useFunction('stem-state', { env: {} });
  it('a function finds no trace of it: no variable it set, source maps off', async () => {
    const res = await fn().request({ path: '/', headers: platformHeaders() });
    assert.deepEqual(JSON.parse(res.body), {
      env: ['HOME', 'NIMBUS_TEST_STEM_CELL', 'NODE_ENV', 'PATH', 'VERCEL', 'VERCEL_DEPLOYMENT_ID', 'VERCEL_REGION'],
      sourceMaps: false,
    });
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
