// `?throw=1` throws synchronously from a (req, res) handler.
module.exports = (req, res) => {
  if (req.query.throw) throw new Error('e2e: the handler threw');
  res.status(200).json({ pid: process.pid });
};
