// An http.Server returned as the default export (module.exports), never listening.
const http = require('node:http');

module.exports = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ shape: 'server-object', url: req.url, method: req.method }));
});
