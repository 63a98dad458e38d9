// Streaming: responses go out chunk by chunk as the handler produces them,
// request bodies reach Web handlers as they arrive, and a client that leaves
// cancels the response stream.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextChunk, platformHeaders, readRest, useFunction } from '../testing/harness.mjs';
import { itStreamsWebResponses } from '../testing/suites.mjs';

describe('Web Response streaming (server-sent events)', () => {
  itStreamsWebResponses(useFunction('stream-web'));
});

describe('(req, res) streaming', () => {
  const fn = useFunction('stream-node');

  it('res.write() reaches the client before the handler continues', async () => {
    const res = await fn().open({ path: '/stream', headers: platformHeaders() });
    assert.equal(res.statusCode, 200);
    assert.equal(await nextChunk(res), 'first\n');
    await fn().request({ path: '/release', headers: platformHeaders() });
    assert.equal(await readRest(res), 'second\n');
  });
});
