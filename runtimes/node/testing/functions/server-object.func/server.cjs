// Exports an http.Server that nobody started.
const http = require('node:http');
module.exports = http.createServer((req, res) => {
  res.end(`server-object ${req.method} ${req.url}`);
});
