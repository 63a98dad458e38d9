// ESM importing a package (resolved with the edge conditions when bundled),
// a relative file and an edge built-in.
import { Buffer } from 'node:buffer';
import { greet } from 'greeting';
import { suffix } from './lib/suffix.mjs';

export default function handler() {
  return new Response(`${greet()}${suffix} ${Buffer.from('edge').toString('hex')}`);
}
