// Shows what reached the function: method, URL, parsed query and every header.
module.exports = (req, res) => {
  res.status(200).json({ method: req.method, url: req.url, query: req.query, headers: req.headers });
};
