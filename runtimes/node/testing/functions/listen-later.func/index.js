// Starts listening 50 ms after import (e.g. after connecting to a database).
const http = require('node:http');
setTimeout(() => {
  http.createServer((req, res) => res.end('listened later')).listen(8080);
}, 50);
