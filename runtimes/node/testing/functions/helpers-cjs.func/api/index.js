// CommonJS (req, res) handler using the Vercel helpers.
module.exports = async (req, res) => {
  const path = req.url.split('?')[0];
  switch (path) {
    case '/query':
      return res.json({ query: req.query });
    case '/cookies':
      return res.json({ cookies: req.cookies });
    case '/body': {
      const body = req.body;
      return res.status(200).json({
        type: Buffer.isBuffer(body) ? 'buffer' : typeof body,
        body: Buffer.isBuffer(body) ? body.toString('hex') : body,
      });
    }
    case '/body-and-stream': {
      // req.body was read for the helpers; the stream must still replay it.
      let streamed = '';
      for await (const chunk of req) streamed += chunk;
      return res.json({ body: req.body, streamed });
    }
    case '/catch-invalid-json':
      try {
        return res.json({ body: req.body });
      } catch (err) {
        return res.status(422).json({ caught: err.message, statusCode: err.statusCode });
      }
    case '/send-string':
      return res.send('<p>hi</p>');
    case '/send-buffer':
      return res.send(Buffer.from([1, 2, 3]));
    case '/send-object':
      return res.status(201).send({ a: 1 });
    case '/send-null':
      return res.send(null);
    case '/send-204':
      return res.status(204).send('ignored');
    case '/redirect':
      return res.redirect('/elsewhere');
    case '/redirect-301':
      return res.redirect(301, '/moved');
    default:
      return res.status(404).send('no such helper test');
  }
};
