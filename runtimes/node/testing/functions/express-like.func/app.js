// An Express-style app: a (req, res, next) function that also has listen().
const http = require('node:http');
function app(req, res, next) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ shape: 'express-like', helpers: typeof res.json, url: req.url }));
}
app.listen = (...args) => http.createServer(app).listen(...args);
module.exports = app;
