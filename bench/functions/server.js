// The peer: a plain Node.js HTTP server answering 'hello', like the benchmark's function
// (`module.exports = (req, res) => { res.end('hello') }`).
//
//   node server.js <unix-socket-path | port>
//
// No timeouts on keep-alive connections (nginx's upstream keepalive reuses them), nothing
// printed: the cold-start client finds out it is up by connecting.
'use strict';
const fs = require('node:fs');
const http = require('node:http');

const where = process.argv[2];
if (!where) {
  process.stderr.write('usage: node server.js <unix-socket-path | port>\n');
  process.exit(2);
}
const server = http.createServer((req, res) => {
  res.end('hello');
});
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
if (/^\d+$/.test(where)) {
  server.listen(Number(where));
} else {
  // nginx's worker may run as another user: let it connect.
  server.listen(where, () => fs.chmodSync(where, 0o666));
}
