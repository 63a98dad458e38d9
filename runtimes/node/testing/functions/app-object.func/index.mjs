// Koa-style app object: listen() creates the http.Server.
import http from 'node:http';

class App {
  callback() {
    return (req, res) => res.end(`app-object ${req.url}`);
  }
  listen(...args) {
    return http.createServer(this.callback()).listen(...args);
  }
}

export default new App();
