// Streaming: responses go out chunk by chunk as the handler produces them,
// request bodies reach the handler as they arrive, and a client that leaves
// cancels the response stream and aborts request.signal.

import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { nextChunk, platformHeaders, readRest, syntheticDir, useEdgeFunction, waitFor, withDeadline } from '../testing/harness.mjs';

describe('edge response streaming', () => {
  const fn = useEdgeFunction(syntheticDir('stream'));

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
});
