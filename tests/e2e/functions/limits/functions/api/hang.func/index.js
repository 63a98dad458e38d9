// `?hang=1` never answers (maxDuration is 1 s); otherwise answers with the process id.
module.exports = (req, res) => {
  if (req.query.hang) return;
  res.status(200).json({ pid: process.pid });
};
