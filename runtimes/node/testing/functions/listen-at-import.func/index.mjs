// Calls listen(3000) at import; the launcher must capture it, not bind port 3000.
import http from 'node:http';

let listenedAt;
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ shape: 'listen-at-import', url: req.url, listening: server.listening, listenedAt }));
});
server.listen(3000, () => {
  listenedAt = typeof server.address();
});
