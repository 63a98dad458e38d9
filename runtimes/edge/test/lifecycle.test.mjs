// The edge launcher's life: start and readiness, specialization (success,
// refusal, failure), requests during specialization, handler errors,
// waitUntil and health, log-line prefixes, environment.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LAUNCHER,
  nodeSyntheticDir,
  platformHeaders,
  readConfig,
  syntheticDir,
  useEdgeFunction,
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
} from '../../node/testing/suites.mjs';

describe('start and specialization', () => {
  // A stale socket file from a previous process must not stop the start.
  const launcher = useStemCell(LAUNCHER, { staleSocket: true });
  itAnswersBeforeSpecialization(launcher);

  it('answers 400 to a non-boolean "middleware" and stays unspecialized', async () => {
    const body = JSON.stringify({ dir: '/x', config: { runtime: 'edge' }, middleware: 'yes' });
    const flag = await launcher().request({ method: 'POST', path: '/__nimbus/specialize', body });
    assert.equal(flag.status, 400);
    assert.match(JSON.parse(flag.body).error, /"middleware"/);
    assert.equal((await launcher().request({ path: '/x', headers: platformHeaders() })).status, 503);
  });

  const dir = syntheticDir('web-function');
  itSpecializesOnce(launcher, dir, readConfig(dir), (first, res) => {
    assert.equal(first.json.shape, 'web-function');
    assert.equal(first.json.bundled, false);
    assert.equal(JSON.parse(res.body).url, 'https://fixture.example.test/still');
  });
});

describe('a request that arrives while the launcher is specializing', () => {
  const dir = syntheticDir('slow-init');
  itHoldsRequestsWhileSpecializing(useStemCell(LAUNCHER), {
    dir,
    config: readConfig(dir),
    marker: 'slow-init: import started',
    request: { headers: { ...platformHeaders(), 'content-type': 'text/plain' }, body: 'sent during specialization' },
    check(specialized, res) {
      assert.equal(specialized.status, 200);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(JSON.parse(res.body), {
        body: 'sent during specialization',
        url: 'https://fixture.example.test/queued?early=1',
      });
    },
  });
});

describe('an invocation pipelined behind the specialize request', () => {
  const dir = syntheticDir('web-function');
  itServesAPipelinedInvocation(useStemCell(LAUNCHER), dir, readConfig(dir), '"url":"https://fixture.example.test/pipelined"');
  itHoldsAnInvocationAwaitingSpecialize(useStemCell(LAUNCHER), dir, readConfig(dir), '"url":"https://fixture.example.test/awaiting"');
});

describe('a request that arrives while a specialization fails', () => {
  const config = { runtime: 'edge', entrypoint: 'index.mjs' };
  itAnswersHeldRequestsWithTheFailure(useStemCell(LAUNCHER), nodeSyntheticDir('slow-fail'), config);
});

describe('a function that cannot be specialized', () => {
  const cases = [
    ['import-throws', {}, /Error: boom at import\n\s+at /],
    ['no-exports', {}, /No default or HTTP-method export found in .*no-exports\.func\/index\.mjs/],
    ['web-function', { config: { runtime: 'nodejs20.x', handler: 'index.mjs' } }, /not an edge function: .*"nodejs20\.x"/],
    ['web-function', { config: { runtime: 'edge' } }, /no "entrypoint"/],
  ];
  for (const [name, options, expected] of cases) {
    describe(`${name} ${JSON.stringify(options)}`, () => {
      itServesTheFailure(useEdgeFunction(syntheticDir(name), options), expected);
    });
  }
});

describe('errors from the handler', () => {
  const fn = useEdgeFunction(syntheticDir('fetch-object'));
  const cases = [
    ['/throw', 'fetch handler exploded'],
    ['/reject', 'fetch handler rejected'],
    ['/not-a-response', 'must return a Response'],
    ['/undefined', 'it returned undefined'],
    ['/uncaught', 'thrown from a timer'],
  ];
  for (const [urlPath, message] of cases) {
    it(`${urlPath}: 500 EDGE_FUNCTION_INVOCATION_FAILED, logged with the request id, next request served`, async () => {
      const id = `tst1::err${urlPath.slice(1)}`;
      const res = await fn().request({ path: urlPath, headers: platformHeaders(id) });
      assert.equal(res.status, 500);
      assert.equal(res.headers['x-vercel-error'], 'EDGE_FUNCTION_INVOCATION_FAILED');
      assert.equal(res.headers['x-nimbus-specialize-failed'], undefined);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(res.body, `A server error has occurred\n\nEDGE_FUNCTION_INVOCATION_FAILED\n\n${id}\n`);
      await waitFor(() => fn().stderr.includes(message), 'the error on stderr');
      const line = fn().stderr.split('\n').find((l) => l.includes('EDGE_FUNCTION_INVOCATION_FAILED in fetch-object.func') && l.includes(message));
      assert.ok(line?.startsWith(`[${id}] `), `stderr: ${fn().stderr}`);
      const ok = await fn().request({ path: '/ok', headers: platformHeaders() });
      assert.equal(ok.body, 'fetch-object GET /ok');
    });
  }
});

describe('waitUntil and health', () => {
  const fn = useEdgeFunction(syntheticDir('web-function'));

  it('health shows the pending promise after the response, then zero once it settles', async () => {
    const id = 'tst1::wait';
    const res = await fn().request({ path: '/wait', headers: platformHeaders(id) });
    assert.equal(res.status, 202);
    assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 1 });
    await fn().request({ path: '/release', headers: platformHeaders() });
    await waitFor(async () => (await fn().health()).pendingWaitUntil === 0, 'pendingWaitUntil 0');
    // The work still logs under the request that registered it.
    await waitFor(() => fn().stdout.includes(`[${id}] waitUntil work done\n`), 'the waitUntil log line');
  });

  it('a rejected waitUntil promise is logged with the request id', async () => {
    const id = 'tst1::reject';
    const res = await fn().request({ path: '/reject', headers: platformHeaders(id) });
    assert.equal(res.body, 'rejecting');
    await waitFor(() => fn().stderr.includes(`[${id}] waitUntil promise rejected: Error: waitUntil work failed`), 'the rejection');
    await waitFor(async () => (await fn().health()).pendingWaitUntil === 0, 'pendingWaitUntil 0');
  });
});

describe('log lines', () => {
  itPrefixesLogLines(useEdgeFunction(syntheticDir('logs')), ['line one', 'line two']);
});

describe('environment', () => {
  const env = {
    ALLOWED: 'yes',
    NOT_IN_USE: 'hidden',
    OVERRIDDEN: 'project',
    NODE_ENV: 'staging',
    VERCEL_ENV: 'production',
    VERCEL_URL: 'fixture-abc123.example.test',
    VERCEL: '0',
  };
  const platform = { VERCEL: '1', VERCEL_REGION: 'tst1', VERCEL_DEPLOYMENT_ID: 'dpl_123' };
  const dir = syntheticDir('env');

  describe('with envVarsInUse', () => {
    const fn = useEdgeFunction(dir, { env, region: 'tst1', deploymentId: 'dpl_123' });
    it('only the listed project variables, NODE_ENV and VERCEL*, config.environment, platform variables', async () => {
      assert.equal(fn().specializeResult.status, 200);
      const res = await fn().request({ path: '/', headers: platformHeaders() });
      assert.deepEqual(JSON.parse(res.body), {
        atImport: 'yes',
        env: {
          ALLOWED: 'yes',
          NODE_ENV: 'staging',
          VERCEL_ENV: 'production',
          VERCEL_URL: 'fixture-abc123.example.test',
          FROM_CONFIG: 'config',
          OVERRIDDEN: 'by-config',
          ...platform,
        },
      });
    });
  });

  describe('without envVarsInUse', () => {
    const { envVarsInUse, ...config } = readConfig(dir);
    const fn = useEdgeFunction(dir, { config, env: { ...env, NODE_ENV: null }, region: 'tst1', deploymentId: 'dpl_123' });
    it('every project variable, then config.environment, then platform variables; nothing inherited', async () => {
      assert.deepEqual(envVarsInUse, ['ALLOWED', 'UNSET_IN_ENV']);
      const res = await fn().request({ path: '/', headers: platformHeaders() });
      const seen = JSON.parse(res.body).env;
      assert.deepEqual(seen, {
        ALLOWED: 'yes',
        NOT_IN_USE: 'hidden',
        VERCEL_ENV: 'production',
        VERCEL_URL: 'fixture-abc123.example.test',
        FROM_CONFIG: 'config',
        OVERRIDDEN: 'by-config',
        ...platform,
        NODE_ENV: 'production',
      });
      assert.equal(seen.NIMBUS_TEST_STEM_CELL, undefined);
      assert.equal(seen.PATH, undefined);
    });
  });
});
