// Cannot be bundled for the edge: `fs` is not an edge built-in and the
// package does not exist.
import { readFileSync } from 'node:fs';
import missing from 'nimbus-package-that-does-not-exist';

export default () => new Response(readFileSync('/etc/hostname', 'utf8') + missing);
