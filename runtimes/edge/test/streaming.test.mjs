// Streaming: responses go out chunk by chunk as the handler produces them,
// request bodies reach the handler as they arrive, and a client that leaves
// cancels the response stream and aborts request.signal. The same tests and
// function as the Node launcher's Web streaming.

import { describe } from 'node:test';
import { itStreamsWebResponses } from '../../node/testing/suites.mjs';
import { nodeSyntheticDir, useEdgeFunction } from '../testing/harness.mjs';

describe('edge response streaming', () => {
  const config = { runtime: 'edge', entrypoint: 'index.mjs' };
  itStreamsWebResponses(useEdgeFunction(nodeSyntheticDir('stream-web'), { config }));
});
