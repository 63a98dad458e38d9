// Exports nothing: starts a server at import and listens on port 3000, like a plain
// Node app. The platform must capture that server instead of binding the port.
import http from 'node:http';

const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ shape: 'listen-at-import', url: req.url, listening: server.listening }));
});
server.listen(3000);
