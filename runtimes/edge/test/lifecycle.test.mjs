// The edge launcher's life: start and readiness, specialization (success,
// refusal, failure), requests during specialization, handler errors,
// waitUntil and health, log-line prefixes, environment.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  EdgeLauncher,
  platformHeaders,
  readConfig,
  syntheticDir,
  useEdgeFunction,
  waitFor,
} from '../testing/harness.mjs';

describe('start and specialization', () => {
  let launcher;
  before(async () => {
    launcher = new EdgeLauncher();
    // A stale socket file from a previous process must not stop the start.
    fs.writeFileSync(launcher.socket, 'stale');
    await launcher.start();
  });
  after(async () => {
    await launcher?.stop();
  });

  it('prints exactly one line, "ready <pid>", once it accepts connections', () => {
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

  it('refuses a specialize that is not a POST with 405', async () => {
    const res = await launcher.request({ path: '/__nimbus/specialize' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'POST');
  });

  it('answers 400 to a malformed specialize body and stays unspecialized', async () => {
    const post = (body) => launcher.request({ method: 'POST', path: '/__nimbus/specialize', body });
    assert.equal((await post('{"dir": 42')).status, 400);
    const missing = await post('{"config": {}}');
    assert.equal(missing.status, 400);
    assert.match(JSON.parse(missing.body).error, /"dir"/);
    const flag = await post(JSON.stringify({ dir: '/x', config: { runtime: 'edge' }, middleware: 'yes' }));
    assert.equal(flag.status, 400);
    assert.match(JSON.parse(flag.body).error, /"middleware"/);
    assert.equal((await launcher.request({ path: '/x', headers: platformHeaders() })).status, 503);
  });

  it('specializes, then refuses a second specialize with 409', async () => {
    const dir = syntheticDir('web-function');
    const first = await launcher.specialize(dir, readConfig(dir));
    assert.equal(first.status, 200);
    assert.equal(first.json.ok, true);
    assert.equal(first.json.shape, 'web-function');
    assert.equal(first.json.bundled, false);
    assert.equal(typeof first.json.initMs, 'number');
    const second = await launcher.specialize(dir, readConfig(dir));
    assert.equal(second.status, 409);
    assert.equal(second.json.ok, false);
    const res = await launcher.request({ path: '/still', headers: platformHeaders() });
    assert.equal(JSON.parse(res.body).url, 'https://fixture.example.test/still');
  });

  it('after specialization /__nimbus/warmup is an ordinary function path', async () => {
    const res = await launcher.request({ method: 'POST', path: '/__nimbus/warmup', headers: platformHeaders(), body: 'x' });
    assert.equal(JSON.parse(res.body).body, 'x');
  });
});

describe('a request that arrives while the launcher is specializing', () => {
  let launcher;
  before(async () => {
    launcher = await new EdgeLauncher().start();
  });
  after(async () => {
    await launcher?.stop();
  });

  it('waits for the function and gets its full body', async () => {
    const dir = syntheticDir('slow-init');
    const specialized = launcher.specialize(dir, readConfig(dir));
    await waitFor(() => launcher.stdout.includes('slow-init: import started'), 'the import to start');
    const res = await launcher.request({
      method: 'POST',
      path: '/queued?early=1',
      headers: { ...platformHeaders(), 'content-type': 'text/plain' },
      body: 'sent during specialization',
    });
    assert.equal((await specialized).status, 200);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), {
      body: 'sent during specialization',
      url: 'https://fixture.example.test/queued?early=1',
    });
  });
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
      const fn = useEdgeFunction(syntheticDir(name), options);
      it('specialize answers 500 with the error; later requests get the same 500; the process stays up', async () => {
        const { status, json } = fn().specializeResult;
        assert.equal(status, 500);
        assert.equal(json.ok, false);
        assert.match(json.error, expected);
        assert.match(fn().stderr, /specialize failed for /);
        const res = await fn().request({ path: '/after-failure', headers: platformHeaders() });
        assert.equal(res.status, 500);
        assert.deepEqual(JSON.parse(res.body), json);
        assert.deepEqual(await fn().health(), { inflight: 0, pendingWaitUntil: 0 });
        const again = await fn().specialize(syntheticDir('web-function'), readConfig(syntheticDir('web-function')));
        assert.equal(again.status, 409);
        assert.equal(fn().exited, false);
      });
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
  const fn = useEdgeFunction(syntheticDir('logs'));

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
    for (const line of ['line one', 'line two', 'after a timer for /first']) {
      assert.ok(out.includes(`[${id}] ${line}\n`), `stdout lacks "[${id}] ${line}": ${out}`);
    }
    assert.ok(fn().stderr.includes(`[${id}] an error line\n`), `stderr: ${fn().stderr}`);
  });

  it('uses x-nimbus-id when there is no x-vercel-id', async () => {
    const headers = { ...platformHeaders(), 'x-nimbus-id': 'nimbus-42' };
    delete headers['x-vercel-id'];
    await fn().request({ path: '/second', headers });
    await waitFor(() => fn().stdout.includes('[nimbus-42] after a timer for /second\n'), 'the prefixed line');
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
