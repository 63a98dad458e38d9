// Writes to stdout and stderr during the request.
module.exports = (req, res) => {
  console.log(`hello from logs, tag=${req.query.tag}`);
  console.error(`warning from logs, tag=${req.query.tag}`);
  res.status(200).json({ tag: req.query.tag });
};
